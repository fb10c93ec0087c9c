"""`listgate status` and the metrics: numbers read back from rows, down services reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from listgate import counters, status
from listgate.cli import main
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Bounce, Delivery, OutboxEntry
from listgate.schema import head
from listgate.spool import Depth
from tests.support.config import make_settings
from tests.support.factories import MakeList, make_mail, post

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def busy_day(db: sessionmaker[Session], make_list: MakeList) -> None:
    """Two posts, their deliveries in various states, a bounce and some refusals."""
    make_list("dev")
    first = post(db, make_mail("one"))
    post(db, make_mail("two"))
    with transaction(db) as session:
        counters.bump(session, counters.RECEIVED, n=5)
        counters.bump(session, counters.REFUSED, "unknown-list", n=2)
        counters.bump(session, counters.REFUSED, "too-big")
        for address, state in (
            ("a@x.org", "sent"),
            ("b@x.org", "sent"),
            ("c@x.org", "deferred"),
            ("d@x.org", "bounced"),
        ):
            session.add(
                Delivery(
                    message_pk=first.message_pk,
                    address=address,
                    status=state,
                    last_error="0 ConnectionRefusedError: [Errno 111] Connection refused"
                    if state == "deferred"
                    else "",
                    next_attempt_at=NOW + timedelta(minutes=5) if state == "deferred" else None,
                )
            )
        session.flush()
        session.add(Bounce(address="d@x.org", kind="permanent"))
        session.add(OutboxEntry(kind="listgate.fanout", created_at=NOW - timedelta(seconds=90)))


def test_metrics_are_read_from_rows(db: sessionmaker[Session], make_list: MakeList) -> None:
    busy_day(db, make_list)
    with db() as session:
        m = status.gather_metrics(session, now=NOW)
    assert m.received == 5
    assert m.refused == {"unknown-list": 2, "too-big": 1}
    assert m.deliveries == {"sent": 2, "deferred": 1, "bounced": 1}
    assert m.bounced == {"permanent": 1}
    assert m.archived == 2
    assert m.outbox_pending >= 1 and m.queue_lag_seconds >= 90
    assert m.last_received is not None


def test_status_lists_database_broker_queue_and_last_mail(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    busy_day(db, make_list)
    state = status.collect(settings)
    text = "\n".join(status.render(state, now=NOW))
    assert "database   ok" in text and "up to date" in text
    assert "broker     ok" in text and "celery: 0 waiting" in text
    assert "deliveries 2 sent" in text and "1 deferred, 1 bounced" in text
    assert "5 received" in text and "3 refused" in text
    assert "last mail  " in text and "never" not in text


def test_the_broker_queue_length_counts_waiting_tasks(settings: Settings) -> None:
    from kombu import Connection

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with Connection(settings.broker_url) as conn:
        queue = conn.SimpleQueue("celery")
        queue.put({"task": "x"})
        queue.put({"task": "y"})
        queue.close()
    assert status.broker_queue_lengths(settings.broker_url) == {"celery": 2}


def test_status_command_exits_1_and_names_what_is_down(tmp_path: Path) -> None:
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": "x" * 20,
        "LISTGATE_DATABASE_URL": "postgresql://lg:hunter22@127.0.0.1:1/lg",
        "LISTGATE_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    result = CliRunner().invoke(main, ["status"], env=env)
    assert result.exit_code == 1
    assert "database   DOWN   postgresql://lg:***@127.0.0.1:1/lg" in result.output
    assert "broker     DOWN   redis://127.0.0.1:1/0" in result.output
    assert "hunter22" not in result.output and "Traceback" not in result.output


def test_status_json_names_every_problem_and_keeps_secrets_out(tmp_path: Path) -> None:
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": "x" * 20,
        "LISTGATE_DATABASE_URL": "postgresql://lg:hunter22@127.0.0.1:1/lg",
        "LISTGATE_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    result = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert result.exit_code == 1
    found = json.loads(result.output)
    assert found["ok"] is False
    assert len(found["problems"]) >= 2 and any("database" in p for p in found["problems"])
    assert any("broker" in p for p in found["problems"]), found["problems"]
    assert "hunter22" not in result.output


def test_status_says_when_the_schema_is_behind(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    text = "\n".join(status.render(status.collect(settings)))
    assert "revision none" in text and "listgate db upgrade" in text


def test_failed_work_the_not_posted_queue_and_requests_are_counted(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    from listgate import lists, subscriptions
    from listgate.models import Subscription

    make_list("dev")
    make_list("club", private=True)
    post(db, make_mail("auto", headers={"Auto-Submitted": "auto-replied"}))
    with transaction(db) as session:
        session.add(
            OutboxEntry(
                kind="listgate.handle_command", done_at=NOW, failed_at=NOW, last_error="boom"
            )
        )
        session.add(OutboxEntry(kind="listgate.send_notice", done_at=NOW))
        sub = subscriptions.start(session, lists.require(session, "club"), "x@example.org")
        assert isinstance(sub, Subscription) and sub.status == "awaiting"
    with db() as session:
        m = status.gather_metrics(session, now=NOW)
    assert (m.outbox_failed, m.not_posted, m.awaiting_approval) == (1, 1, 1)
    text = "\n".join(status.render(status.collect(settings), now=NOW))
    assert "1 failed for good" in text
    assert "1 mail accepted and not posted, 1 subscription request awaiting approval" in text


def test_deferred_copies_make_status_fail_and_say_why(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    busy_day(db, make_list)
    state = status.collect(settings)
    assert not state.ok and state.deferring == 1
    text = "\n".join(status.render(state, now=NOW))
    assert "relay      DEFERRING 1 copy waits for the relay, which said: 0 Connection" in text
    assert "Connection refused" in text and "next try in 300 s" in text
    result = CliRunner().invoke(
        main,
        ["status"],
        env={
            "LISTGATE_DATA_DIR": str(settings.data_dir),
            "LISTGATE_DATABASE_URL": settings.database_url,
            "LISTGATE_SECRET_KEY": settings.secret_key,
        },
    )
    assert result.exit_code == 1 and "DEFERRING" in result.output


def test_no_deferred_copy_and_every_service_up_is_ok(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    assert status.collect(settings).ok


def test_a_schema_behind_is_not_shown_ok(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    lines = status.render(status.collect(settings))
    database = next(line for line in lines if line.startswith("database "))
    assert database.startswith("database   BEHIND sqlite:///"), database
    assert database.endswith(
        "(revision none, code expects " + str(head()) + ": run `listgate db upgrade`)"
    )
    assert lines[-1] == "trouble    1 problem: the database's schema is behind the code"


def test_mail_that_failed_to_archive_fails_status_and_each_problem_is_named_last() -> None:
    metrics = status.Metrics(spool=Depth(failed=2), read_at=NOW)
    assert not status.Status(database="db", database_ok=True, broker_ok=True, metrics=metrics).ok
    state = status.Status(
        database="db",
        database_ok=True,
        broker_ok=True,
        metrics=metrics,
        processes={
            "worker": {"state": "restarting", "last_exit": "killed by SIGKILL", "restart_in": 2}
        },
    )
    lines = status.render(state, now=NOW)
    # the commands it names exist (`listgate spool list` did not)
    assert "2 mails FAILED to archive (`listgate spool show`, `listgate spool retry`)" in lines[2]
    assert lines[-1] == (
        "trouble    2 problems: 2 mails failed to archive; worker of `listgate up` not serving"
    )
    assert status.Status(
        database="db", database_ok=True, broker_ok=True, metrics=status.Metrics(read_at=NOW)
    ).ok


def test_every_command_a_status_line_names_exists() -> None:
    import re

    from listgate.gateways import GatewayReport

    metrics = status.Metrics(
        spool=Depth(failed=1),
        deliveries={"deferred": 1},
        gateways=[GatewayReport("mx2/9/0.0.0.0:25", 0, 100, 25, NOW - timedelta(hours=1))],
        read_at=NOW,
    )
    state = status.Status(
        database="db", database_ok=True, revision="0001", head="0002", metrics=metrics
    )
    named = re.findall(r"`listgate ([^`]+)`", "\n".join(status.render(state, now=NOW)))
    commands = {tuple(n.split()[:2]) for n in named}  # a command and its subcommand
    assert commands == {
        ("db", "upgrade"),
        ("spool", "show"),
        ("spool", "retry"),
        ("gateways", "forget"),
    }
    for command in commands:
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_work_that_failed_for_good_today_is_trouble_and_named_older_failures_only_counted(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    """A notice or command that failed for good is mail somebody waited for and never got: the
    operator must hear of it (exit 1) while it is fresh, with what failed and its log reference;
    one from last week is history, counted but no longer trouble."""
    make_list("dev")

    def failed(kind: str, when: datetime, error: str) -> None:
        with transaction(db) as session:
            session.add(
                OutboxEntry(
                    kind=kind, created_at=when, done_at=when, failed_at=when, last_error=error
                )
            )

    failed("listgate.send_notice", NOW - timedelta(days=8), "OSError: gone [reference 0ld0ld00]")
    state = status.collect(settings)
    assert state.ok, state.problems
    assert "1 failed for good (none in the last 24 h)" in "\n".join(status.render(state, now=NOW))

    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    failed("listgate.handle_command", an_hour_ago, "ValueError: no such list [reference 5eed5eed]")
    state = status.collect(settings)
    assert state.problems == ["1 outbox entry failed for good in the last 24 h"]
    text = "\n".join(status.render(state))
    assert (
        "2 failed for good (1 in the last 24 h; the last, 1 hour ago: listgate.handle_command, "
        "ValueError: no such list [reference 5eed5eed])"
    ) in text, text
    result = CliRunner().invoke(
        main,
        ["status", "--json"],
        env={
            "LISTGATE_DATA_DIR": str(settings.data_dir),
            "LISTGATE_DATABASE_URL": settings.database_url,
            "LISTGATE_SECRET_KEY": settings.secret_key,
        },
    )
    assert result.exit_code == 1
    found = json.loads(result.output)
    assert found["metrics"]["outbox_failed_recent"] == 1
    assert found["problems"] == ["1 outbox entry failed for good in the last 24 h"]
