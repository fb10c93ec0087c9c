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


def test_an_idle_worker_polls_the_embedded_broker_without_statements_and_misses_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each poll of a queue took the broker file's write lock (BEGIN IMMEDIATE), ten times a
    second: an idle `listgate up` worker used 2% of a core and made publishers wait. A poll of a
    queue found empty, with the file unchanged since, runs no statement; a message published
    since (by another connection, as the archiver and the web do) is taken at the next poll."""
    from queue import Empty

    from kombu import Connection
    from sqlalchemy import event

    import listgate.filewatch
    from worker.celery_app import SqliteBrokerChannel, broker_connection_url

    make_celery(settings)  # the broker file, in WAL mode
    url = broker_connection_url(settings)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    with Connection(url) as consumer, Connection(url) as publisher:
        channel = consumer.default_channel
        assert isinstance(channel, SqliteBrokerChannel)
        engine = channel.session.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:

            def poll() -> object:
                try:
                    return channel._get("listgate-test")
                except Empty:
                    return None

            assert poll() is None  # looks: the queue is empty (and made: the file changed)
            assert poll() is None  # looks once more
            statements.clear()
            assert [poll() for _ in range(20)] == [None] * 20
            assert statements == [], "an idle poll of an unchanged broker file ran statements"
            publisher.SimpleQueue("listgate-test").put({"n": 1})
            got = poll()
            assert got is not None and "n" in str(got)  # taken at the next poll
            assert poll() is None
            publisher.SimpleQueue("listgate-test").put({"n": 2})
            assert poll() is not None
            monkeypatch.setattr(listgate.filewatch, "REREAD_SECONDS", 0.0)
            assert poll() is None
            statements.clear()
            assert poll() is None
            assert statements, "an unchanged file is still read now and then (REREAD_SECONDS)"
        finally:
            event.remove(engine, "before_cursor_execute", count)
