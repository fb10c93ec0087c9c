"""The spool and its archiver: what a 250 promised becomes a post, an entry of the not-posted queue
that says why not, or a failed spool row with the error; never nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from listgate import counters, dispatch, ingest, notposted, status
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import (
    Ban,
    Counter,
    MailingList,
    Message,
    MessageVariant,
    OutboxEntry,
    SpooledMail,
    Thread,
)
from listgate.spool import SIDE_SPOOL, Spool, Spooled
from listgate.states import SpoolState
from listgate.threads import Draft
from tests.support.factories import MakeList
from tests.support.gateway import through_hooks


def _raw(
    msgid: str, sender: str = "ann@example.org", body: str = "Hello\r\n", extra: str = ""
) -> bytes:
    return f"From: {sender}\r\nSubject: hi\r\nMessage-ID: <{msgid}>\r\n{extra}\r\n{body}".encode()


@pytest.fixture
def gate(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]]:
    mlist = make_list("dev")
    sent: list = []
    handler = GatewayHandler(settings, db)
    return handler, Archiver(settings, db, enqueue=sent.extend), mlist, sent


def _rows(db: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with db() as s:
        return [
            (r.message_id, r.state, r.reason)
            for r in s.scalars(select(SpooledMail).order_by(SpooledMail.id))
        ]


def _not_posted(db: sessionmaker[Session]) -> list[tuple[str, str]]:
    with db() as s:
        return [(n.message_id, n.reason) for n in notposted.waiting(s)]


def test_a_ban_added_after_the_250_puts_the_post_in_the_not_posted_queue_where_it_can_be_released(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]],
    db: sessionmaker[Session],
    settings: Settings,
) -> None:
    handler, archiver, mlist, sent = gate
    assert through_hooks(handler, _raw("late@x"), "ann@example.org", ["dev@lists.test"]).endswith(
        "stored"
    )
    with transaction(db) as s:
        s.add(Ban(list_id=mlist.id, address="ann@example.org"))
    assert archiver.drain() == 1
    assert _not_posted(db) == [("late@x", "ann@example.org is banned from posting to this list")]
    assert _rows(db) == []  # one queue: nothing kept in the spool beside it
    with db() as s:
        assert s.scalars(select(Message)).all() == [] and counters.values(s, counters.REFUSED) == {
            "banned": 1
        }
        metrics = status.gather_metrics(s)
    assert (metrics.not_posted, metrics.spool.pending, metrics.spool.failed) == (1, 0, 0)
    lines = status.render(status.Status("db", True, "x", "x", "broker", True, {}, metrics))
    assert (
        "moderators 1 mail accepted and not posted, 0 subscription requests awaiting approval"
        in lines
    )
    assert sent == []
    with transaction(db) as s:  # still banned: the release says why not
        entry_id = notposted.waiting(s)[0].id
        with pytest.raises(LookupError, match="banned"):
            ingest.release(s, entry_id, "mod@example.org", domain=settings.domain)
    with transaction(db) as s:
        s.execute(delete(Ban))
    with transaction(db) as s:
        released = ingest.release(s, entry_id, "mod@example.org", domain=settings.domain)
    assert released.status == ingest.STORED and [e.kind for e in released.outbox] == [
        dispatch.FANOUT
    ]
    assert _not_posted(db) == []


def test_automatic_mail_is_answered_not_posted_and_lands_in_the_queue_after_archiving(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    handler, archiver, _, sent = gate
    reply = through_hooks(
        handler,
        _raw("auto@x", extra="Auto-Submitted: auto-replied\r\n"),
        "ann@example.org",
        ["dev@lists.test"],
    )
    assert reply == "250 2.0.0 OK: accepted, not posted (Auto-Submitted: auto-replied)"
    assert _not_posted(db) == []  # decided at DATA, kept by the archiver
    archiver.drain()
    assert _not_posted(db) == [("auto@x", "Auto-Submitted: auto-replied")]
    with db() as s:
        assert s.scalars(select(Message)).all() == [] and counters.values(s, counters.REFUSED) == {
            "automatic": 1
        }
    assert sent == [] and _rows(db) == []


def test_other_bytes_under_an_archived_message_id_become_a_variant_the_same_bytes_nothing(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    from listgate import removal

    handler, archiver, _, sent = gate
    first = _raw("v@x")
    through_hooks(handler, first, "ann@example.org", ["dev@lists.test"])
    archiver.drain()
    again = through_hooks(handler, first, "ann@example.org", ["dev@lists.test"])
    assert again.endswith("already archived, not stored twice")
    other = _raw("v@x", body="Hello, corrected\r\n")
    assert through_hooks(handler, other, "ann@example.org", ["dev@lists.test"]).endswith(
        "same Message-ID"
    )
    archiver.drain()
    assert through_hooks(handler, other, "ann@example.org", ["dev@lists.test"]).endswith(
        "not stored twice"
    )
    with db() as s:
        assert (
            len(s.scalars(select(MessageVariant)).all()) == 1
            and len(s.scalars(select(Message)).all()) == 1
        )
        pk = s.scalars(select(Message.id)).one()
    assert len(sent) == 1  # one fan-out: a variant is not sent out
    with transaction(db) as s:
        removal.remove(s, [s.get_one(Message, pk)], "spam", "mod@example.org")
    third = _raw("v@x", body="Hello, once more\r\n")
    assert through_hooks(handler, third, "ann@example.org", ["dev@lists.test"]).endswith(
        "not stored twice"
    )
    archiver.drain()
    with db() as s:
        assert len(s.scalars(select(MessageVariant)).all()) == 1  # a takedown gets no new variants


def test_a_ban_known_at_data_is_refused_in_the_dialogue_also_when_hidden_in_sender(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    handler, _, mlist, _ = gate
    with transaction(db) as s:
        s.add(Ban(list_id=mlist.id, address="spam@example.net"))
    for raw, envelope in (
        (_raw("b1@x", "spam@example.net"), "x@example.org"),
        (_raw("b2@x", extra="Sender: spam@example.net\r\n"), "x@example.org"),
        (_raw("b3@x"), "spam@example.net"),
    ):
        reply = through_hooks(handler, raw, envelope, ["dev@lists.test"])
        assert reply.startswith("550 5.7.1") and "banned" in reply
    assert _rows(db) == []  # nothing spooled


def test_a_reply_command_naming_no_thread_is_not_posted_never_silent(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    handler, archiver, _, _ = gate
    raw = _raw("cmd@x", body="follow\r\n", extra="In-Reply-To: <nowhere@x>\r\n")
    assert through_hooks(handler, raw, "ann@example.org", ["dev@lists.test"]).endswith("stored")
    archiver.drain()
    assert _not_posted(db) == [("cmd@x", "'follow' names no thread we know")] and _rows(db) == []


def test_a_message_that_fails_alone_is_kept_as_failed_and_the_batch_goes_on(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]],
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from listgate import threads

    handler, archiver, _, sent = gate
    real = threads.attach

    def attach(session: Session, msg: Draft, *a: Any, **k: Any) -> tuple[Thread, bool]:
        if msg.message_id == "bad@x":
            raise ValueError("a bug this message triggers")
        return real(session, msg, *a, **k)

    monkeypatch.setattr(threads, "attach", attach)
    for msgid in ("ok1@x", "bad@x", "ok2@x"):
        through_hooks(handler, _raw(msgid), "ann@example.org", ["dev@lists.test"])
    assert archiver.archive_once() == 3
    assert _rows(db) == [("bad@x", SpoolState.FAILED, "ValueError: a bug this message triggers")]
    with db() as s:
        assert sorted(s.scalars(select(Message.message_id))) == ["ok1@x", "ok2@x"]
        metrics = status.gather_metrics(s)
    assert len(sent) == 2
    lines = status.render(status.Status("db", True, "x", "x", "broker", True, {}, metrics))
    assert any(
        line.startswith("spool      0 waiting for the archiver; 1 mail FAILED to archive")
        for line in lines
    ), lines
    monkeypatch.setattr(threads, "attach", real)  # the bug is fixed: the operator retries it
    with transaction(db) as s:
        spool = Spool(db.kw["bind"])
        assert spool.retry(s, [spool.failed(s)[0].id]) == 1
        spool.close()
    assert archiver.drain() == 1
    assert _rows(db) == []
    with db() as s:
        assert sorted(s.scalars(select(Message.message_id))) == ["bad@x", "ok1@x", "ok2@x"]
    assert len(sent) == 3


def test_mail_to_a_list_deleted_after_the_250_is_kept_as_failed_saying_so(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    from listgate import administration

    handler, archiver, mlist, _ = gate
    through_hooks(handler, _raw("gone@x"), "ann@example.org", ["dev@lists.test"])
    with transaction(db) as s:
        administration.delete_list(s, s.get_one(type(mlist), mlist.id), "cli:test")
    archiver.drain()
    assert _rows(db) == [("gone@x", SpoolState.FAILED, "no such list any more: dev@lists.test")]


def test_status_shows_the_spool_depth_and_the_age_of_the_oldest(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    handler, _, _, _ = gate
    through_hooks(handler, _raw("w1@x"), "ann@example.org", ["dev@lists.test"])
    through_hooks(handler, _raw("w2@x"), "ann@example.org", ["dev@lists.test"])
    with db() as s:
        metrics = status.gather_metrics(s, now=datetime.now(UTC) + timedelta(seconds=90))
    assert metrics.spool.pending == 2 and 89 < metrics.spool.oldest_seconds < 120
    lines = status.render(status.Status("db", True, "x", "x", "broker", True, {}, metrics))
    assert any(
        line.startswith("spool      2 waiting for the archiver, oldest") for line in lines
    ), lines
    # the archive keeps only rows that failed; pending mail is in the spool file
    assert _rows(db) == []


def test_listgate_spool_shows_failed_mail_and_retry_gives_it_back_to_the_archiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from listgate import cli, lists, threads
    from listgate.db import make_engine, session_factory, writer
    from listgate.schema import upgrade
    from tests.support.config import make_settings

    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
    }
    settings = make_settings(tmp_path, **env)
    engine = make_engine(settings)
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
    handler, archiver = GatewayHandler(settings, db), Archiver(settings, db)
    real = threads.attach
    monkeypatch.setattr(
        threads, "attach", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk on fire"))
    )
    for msgid in ("f1@x", "f2@x"):
        through_hooks(handler, _raw(msgid), "ann@example.org", ["dev@lists.test"])
    archiver.drain()

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli.main, ["spool", *args], env=env)

    try:
        shown = run("show")
        assert shown.exit_code == 0, shown.output
        assert (
            "<f1@x> from ann@example.org to dev@lists.test: RuntimeError: disk on fire"
            in shown.output
        )
        assert "2 mails failed to archive; 0 waiting for the archiver" in shown.output
        assert run("retry").exit_code == 2 and "give a spool id or --all" in run("retry").output
        missing = run("retry", "999")
        assert (
            missing.exit_code == 1
            and "there is no failed message 999 in the spool" in missing.output
        )
        with db() as s:
            first = s.scalars(select(SpooledMail.id).order_by(SpooledMail.id)).first()
        assert "1 mail back in line" in run("retry", str(first)).output
        again = run("retry", str(first)).output  # typed twice: it is said where it may be now
        assert f"no failed message {first} in the spool: it is back in line" in again, again
        monkeypatch.setattr(threads, "attach", real)  # fixed: what is retried is archived
        assert archiver.drain() == 1
        assert "1 mail back in line" in run("retry", "--all").output  # the other one
        assert archiver.drain() == 1
        assert "0 mails failed to archive" in run("show").output
        with db() as s:
            assert sorted(s.scalars(select(Message.message_id))) == ["f1@x", "f2@x"]
    finally:
        handler.spool.close()
        archiver.spool.close()
        engine.dispose()


def test_archived_rows_leave_the_spool_file_once_a_second_while_busy_and_when_idle(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    """Each clear takes the spool file's write lock, which the listener's appends wait for."""
    handler, archiver, _mlist, _sent = gate
    spool = archiver.spool
    assert spool.separate, "the unit tests' SQLite keeps its spool in a file of its own"

    def in_file() -> int:
        with spool.reader.connect() as conn:
            return len(conn.execute(select(SIDE_SPOOL.c.id)).all())

    def post(*names: str) -> None:
        for name in names:
            assert through_hooks(
                handler, _raw(f"{name}@example.org"), "ann@example.org", ["dev@lists.test"]
            ).startswith("250")

    post("a", "b", "c")
    assert archiver.archive_once() == 3
    assert in_file() == 0  # the first clear is at once
    post("d", "e")
    assert archiver.archive_once() == 2
    assert in_file() == 2  # archived, past the mark, left for the next clear
    with db() as s:
        assert spool.depth(s).pending == 0
    assert archiver.archive_once() == 0  # idle: cleared now, and nothing archived twice
    assert in_file() == 0
    with db() as s:
        assert len(s.scalars(select(Message)).all()) == 5


def test_an_idle_archiver_reads_nothing_until_the_spool_file_changes(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]],
    db: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite: an idle archiver polls 20 times a second; a poll that finds the spool file as it
    was when it last held nothing runs no statement (one PRAGMA on a connection of its own),
    and mail appended since is taken at the next poll: by this listener, another one, or after
    another archiver cleared the file. `listgate up` idled at 4.5% of a core in the archiver."""
    from sqlalchemy import event

    import listgate.filewatch

    handler, archiver, _mlist, _sent = gate
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    def post(name: str, through: GatewayHandler = handler) -> None:
        assert through_hooks(
            through, _raw(f"{name}@example.org"), "ann@example.org", ["dev@lists.test"]
        ).startswith("250")

    engines = (db.kw["bind"], archiver.spool.reader, archiver.spool.engine)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    other_listener = GatewayHandler(settings, db)
    other_archiver = Archiver(settings, db)
    try:
        post("a")
        assert archiver.archive_once() == 1
        assert archiver.archive_once() == 0  # idle: looks once, the file as it is now is known
        statements.clear()
        assert [archiver.archive_once() for _ in range(20)] == [0] * 20
        assert statements == [], "an idle poll of an unchanged spool file ran statements"
        post("b")
        assert archiver.archive_once() == 1  # the next poll after an append takes it
        assert archiver.archive_once() == 0
        post("c", through=other_listener)
        assert archiver.archive_once() == 1
        post("d")
        assert other_archiver.drain() == 1  # another archiver took it, and cleared the file
        assert archiver.archive_once() == 0 and statements  # it looked again, found it taken
        post("e", through=other_listener)
        assert archiver.archive_once() == 1
        assert archiver.archive_once() == 0
        monkeypatch.setattr(listgate.filewatch, "REREAD_SECONDS", 0.0)
        statements.clear()
        assert archiver.archive_once() == 0
        assert statements, "an unchanged file is still read now and then (REREAD_SECONDS)"
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
        other_listener.spool.close()
        other_archiver.spool.close()
    with db() as s:
        assert sorted(s.scalars(select(Message.message_id))) == [
            f"{n}@example.org" for n in "abcde"
        ]


def test_the_commit_that_moves_the_mark_is_on_disk_before_the_spool_file_forgets_the_rows(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    """SQLite: the archive commits at synchronous=NORMAL (a power loss may undo its last commits),
    while the spool file drops rows up to the mark durably. The archiver's commit, which moves
    the mark, is therefore FULL; other writers of the archive keep NORMAL."""
    from sqlalchemy import event, text

    handler, archiver, _mlist, _sent = gate
    engine = db.kw["bind"]
    levels: list[tuple[bool, int]] = []  # (the transaction moved the mark, its safety level)
    moved: set[int] = set()

    def seen(conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        if "spool_marks" in statement and statement.lstrip().upper().startswith(
            ("UPDATE", "INSERT")
        ):
            moved.add(id(conn.connection.dbapi_connection))

    def committing(conn: Connection) -> None:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        level = raw.execute("PRAGMA synchronous").fetchone()[0]
        levels.append((id(raw) in moved, level))
        moved.discard(id(raw))

    event.listen(engine, "before_cursor_execute", seen)
    event.listen(engine, "commit", committing)
    try:
        for name in ("a", "b"):
            assert through_hooks(
                handler, _raw(f"{name}@example.org"), "ann@example.org", ["dev@lists.test"]
            ).startswith("250")
        assert archiver.archive_once() == 2
        with transaction(db) as s:  # another writer of the archive (the web, the worker)
            s.execute(text("UPDATE lists SET title = title"))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        event.remove(engine, "commit", committing)
    FULL, NORMAL = 2, 1
    assert (True, FULL) in levels, levels
    assert all(level == FULL for marked, level in levels if marked), levels
    assert levels[-1] == (False, NORMAL), levels


def test_a_spool_file_that_cannot_be_cleared_does_not_slow_the_archiving(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]],
    db: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full disk refuses the spool file's DELETE while the archive still takes commits (the
    DELETE of many rows needs more room in its WAL than one batch's commit): the archiving has
    committed, so the batch is done, its work is handed on, and no pause follows; the archived
    rows stay past the mark until a later clear succeeds."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    import listgate.spool

    monkeypatch.setattr(listgate.spool, "CLEAR_EVERY", 0.0)  # each round may try to clear
    handler, archiver, _mlist, sent = gate
    spool = archiver.spool
    full = {"on": True}

    def refuse(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if full["on"] and statement.lstrip().upper().startswith("DELETE FROM SPOOL"):
            raise OperationalError(statement, {}, Exception("database or disk is full"))

    def in_file() -> int:
        with spool.reader.connect() as conn:
            return len(conn.execute(select(SIDE_SPOOL.c.id)).all())

    event.listen(spool.engine, "before_cursor_execute", refuse)
    try:
        for name in ("a", "b", "c"):
            assert through_hooks(
                handler, _raw(f"{name}@example.org"), "ann@example.org", ["dev@lists.test"]
            ).startswith("250")
        assert archiver.archive_once() == 3
        assert archiver.pause == 0
        assert len(sent) == 3  # the fan-out work of each post, handed on after the commit
        assert in_file() == 3
        assert archiver.archive_once() == 0  # idle: the clear fails again, nothing archived twice
        assert "could not clear" in caplog.text
    finally:
        event.remove(spool.engine, "before_cursor_execute", refuse)
    full["on"] = False  # the disk has room again: the next idle round clears
    assert archiver.archive_once() == 0
    assert in_file() == 0
    with db() as s:
        assert sorted(s.scalars(select(Message.message_id))) == [
            "a@example.org",
            "b@example.org",
            "c@example.org",
        ]


def test_a_spool_row_carries_one_line_per_counter_however_many_refusals_it_counts(
    gate: tuple[GatewayHandler, Archiver, MailingList, list[OutboxEntry]], db: sessionmaker[Session]
) -> None:
    handler, archiver, _mlist, _sent = gate
    spool = handler.spool
    many = Spooled(b"", None, (), "", ((counters.REFUSED, "smuggling", 9000), ("received", "", 2)))
    spool.append([many])
    (row,) = spool.pending(10)
    assert row.counts.splitlines() == [f"{counters.REFUSED}:smuggling\t9000", "received:\t2"]
    spool.append(  # a row an older gateway wrote: one line per event
        [Spooled(b"", None, (), "", ())]
    )
    with spool.engine.begin() as conn:
        conn.execute(
            SIDE_SPOOL.update()
            .where(SIDE_SPOOL.c.counts == "")
            .values(counts="received:\nreceived:")
        )
    before = _counted(db)
    assert archiver.drain() == 2
    after = _counted(db)
    assert (
        after[(counters.REFUSED, "smuggling")] - before.get((counters.REFUSED, "smuggling"), 0)
        == 9000
    )
    assert after[("received", "")] - before.get(("received", ""), 0) == 4


def _counted(db: sessionmaker[Session]) -> dict[tuple[str, str], int]:
    with db() as s:
        return {(c.name, c.label): c.value for c in s.scalars(select(Counter))}
