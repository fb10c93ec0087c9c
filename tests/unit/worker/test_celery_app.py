"""The app factory: task names from listgate.dispatch, late acks, the beat schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from listgate import dispatch
from listgate.config import Settings
from worker.__main__ import main
from worker.celery_app import make_celery

NAMES = [
    dispatch.FANOUT,
    dispatch.SEND_NOTICE,
    dispatch.HANDLE_COMMAND,
    dispatch.HANDLE_BOUNCE,
    dispatch.SWEEP_OUTBOX,
    dispatch.SEND_DIGESTS,
    dispatch.RETRY_DEFERRED,
]


def test_tasks_are_registered_by_name_with_late_acks(settings: Settings) -> None:
    app = make_celery(settings)
    for name in NAMES:
        task = app.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1


def test_beat_schedule_sweeps_retries_and_sends_digests(settings: Settings) -> None:
    schedule = {
        entry["task"]: entry["schedule"]
        for entry in make_celery(settings).conf.beat_schedule.values()
    }
    assert schedule[dispatch.SWEEP_OUTBOX] <= 15
    assert schedule[dispatch.RETRY_DEFERRED] <= 30
    assert dispatch.SEND_DIGESTS in schedule


def test_embedded_broker_file_is_in_wal_mode(settings: Settings) -> None:
    import sqlite3

    make_celery(settings)
    path = settings.broker_url.split("///", 1)[1]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_entry_point_explains_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: python -m worker worker|beat" in capsys.readouterr().err


def test_sweeper_backs_off_per_entry() -> None:
    from datetime import timedelta

    from worker.outbox import redispatch_after

    assert [redispatch_after(60, n) for n in (1, 2, 3)] == [
        timedelta(seconds=s) for s in (60, 120, 240)
    ]
    assert redispatch_after(60, 20) == timedelta(hours=1)
    assert redispatch_after(0, 5) == timedelta(0)


def test_the_beat_sends_digests_and_reminders_at_the_configured_times(tmp_path: Path) -> None:
    """Operators choose when the daily mail goes out; the defaults are 00:10 and 08:00 UTC (the
    reminders' run again each hour after it that day: a run a killed worker lost is made good)."""
    from celery.schedules import crontab

    def daily(settings: Settings) -> dict[str, object]:
        entries = make_celery(settings).conf.beat_schedule.values()
        return {e["task"]: e["schedule"] for e in entries}

    default = daily(Settings.from_env({"LISTGATE_DATA_DIR": str(tmp_path / "a")}))
    assert default[dispatch.SEND_DIGESTS] == crontab(hour=0, minute=10)
    assert default[dispatch.SEND_REMINDERS] == crontab(hour="8-23", minute=0)
    chosen = daily(
        Settings.from_env(
            {
                "LISTGATE_DATA_DIR": str(tmp_path / "b"),
                "LISTGATE_DIGEST_TIME": "6:30",
                "LISTGATE_REMINDER_TIME": "17:05",
            }
        )
    )
    assert chosen[dispatch.SEND_DIGESTS] == crontab(hour=6, minute=30)
    assert chosen[dispatch.SEND_REMINDERS] == crontab(hour="17-23", minute=5)
