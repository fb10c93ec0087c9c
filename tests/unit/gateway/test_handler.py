"""The handler's hooks called directly (aiosmtpd's first test level): replies and storage."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar, cast

import pytest
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.answers import Job, Result
from gateway.handler import GatewayHandler
from gateway.writer import GroupWriter
from listgate import counters
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.models import Message, OutboxEntry
from tests.support.factories import MakeList
from tests.support.gateway import through_hooks
from tests.support.spool_faults import hook_appends


class FakeServer:
    """Hooks never touch the server object."""


def fake_server() -> SMTP:
    """A FakeServer where the hooks take an SMTP (they never read it)."""
    return cast(SMTP, FakeServer())


def _session(peer: object = ("192.0.2.1", 4000)) -> SmtpSession:
    s = SmtpSession(loop=None)  # type: ignore[arg-type]  # the hooks never use the session's loop
    s.peer = peer  # type: ignore[assignment]  # aiosmtpd hints str; a peername is a (host, port)
    return s


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class ArchivingHandler(GatewayHandler):
    """The gateway's handler, with an archiver the tests drain and what it enqueued."""

    def __init__(self, settings: Settings, db: sessionmaker[Session]) -> None:
        super().__init__(settings, db)
        self.sent: list[list[OutboxEntry]] = []
        self.archiver = Archiver(settings, db, enqueue=self.sent.append)


@pytest.fixture
def handler(settings: Settings, db: sessionmaker[Session], make_list: MakeList) -> ArchivingHandler:
    make_list("dev")
    return ArchivingHandler(settings, db)


def test_rcpt_refuses_other_domains_unknown_lists_and_bad_commands(
    handler: ArchivingHandler,
) -> None:
    env = Envelope()
    for address, reply in [
        ("dev@other.example", "550 5.1.1"),
        ("nosuch@lists.test", "550 5.1.1"),
        ("dev+bogus@lists.test", "550 5.1.1"),
        ("@relay:dev@lists.test", "550 5.1.1"),
        ("dev@lists.test", "250 2.1.5"),
        ("Dev+Subscribe@LISTS.TEST.", "250 2.1.5"),
    ]:
        assert run(handler.handle_RCPT(fake_server(), _session(), env, address, [])).startswith(
            reply
        ), address
    assert env.rcpt_tos == ["dev@lists.test", "Dev+Subscribe@LISTS.TEST."]


def test_mail_accepts_the_null_sender_and_rate_limits(handler: ArchivingHandler) -> None:
    handler.limits.max_per_minute = 1
    env = Envelope()
    assert run(handler.handle_MAIL(fake_server(), _session(), env, "<>", [])).startswith("250")
    assert env.mail_from == "<>"
    reply = run(handler.handle_MAIL(fake_server(), _session(), Envelope(), "a@example.org", []))
    assert reply.startswith("451 4.7.1") and "per minute" in reply
    assert (
        run(
            handler.handle_MAIL(
                fake_server(), _session(("192.0.2.9", 1)), Envelope(), "a@example.org", []
            )
        )[:3]
        == "250"
    )


def _data(handler: ArchivingHandler, raw: bytes, rcpts: list[str], lmtp: bool = False) -> str:
    handler.lmtp = lmtp
    env = Envelope()
    env.mail_from = "a@example.org"
    env.rcpt_tos = rcpts
    env.original_content = raw
    return run(handler.handle_DATA(fake_server(), _session(), env))


def _spooled(db: sessionmaker[Session]) -> list[tuple[str, str]]:
    """(Message-ID, recipients) of the mail waiting
    in the spool (rows that only count are left out).
    """
    from listgate.spool import Spool

    spool = Spool(db.kw["bind"])
    try:
        with db() as s:
            mark = spool.mark(s)
        return [(r.message_id, r.rcpt_tos) for r in spool.pending(100, after=mark) if r.rcpt_tos]
    finally:
        spool.close()


def test_data_spools_once_then_the_archiver_stores_once_per_list_and_enqueues_after_commit(
    handler: ArchivingHandler, db: sessionmaker[Session]
) -> None:
    raw = b"From: a@example.org\r\nSubject: hi\r\nMessage-ID: <h1@x>\r\n\r\nhello\r\n"
    reply = _data(handler, raw, ["dev@lists.test", "DEV@lists.test"])
    assert reply.startswith("250 2.0.0") and "stored" in reply
    # durable before the 250, not archived yet
    assert _spooled(db) == [("h1@x", "dev@lists.test\nDEV@lists.test")]
    assert handler.sent == []
    assert handler.archiver.drain() == 1
    with db() as s:
        assert [m.message_id for m in s.scalars(select(Message))] == ["h1@x"]
    assert _spooled(db) == []  # archived: its spool row left in the same transaction
    assert [e.kind for e in handler.sent[0]] == ["listgate.fanout"]


def test_lmtp_data_gives_one_line_per_recipient(handler: ArchivingHandler) -> None:
    raw = b"From: a@example.org\r\nSubject: hi\r\nMessage-ID: <h2@x>\r\n\r\nhello\r\n"
    lines = _data(handler, raw, ["dev@lists.test", "dev+help@lists.test"], lmtp=True).split("\r\n")
    assert lines == [
        "250 2.0.0 <dev@lists.test>: stored",
        "250 2.0.0 <dev+help@lists.test>: help request queued",
    ]
    shape = _data(
        handler, b"A: 1\r\n\r\nx\n.\nevil\r\n", ["dev@lists.test", "dev@lists.test"], lmtp=True
    )
    assert [line[:9] for line in shape.split("\r\n")] == ["554 5.5.2", "554 5.5.2"]


def test_a_storage_exception_is_a_451_and_nothing_is_kept(
    handler: ArchivingHandler, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone() -> NoReturn:
        raise RuntimeError("database went away")

    monkeypatch.setattr(handler.spool, "_checkout", gone)  # the spool's append connection
    reply = _data(
        handler, b"From: a@example.org\r\nMessage-ID: <h3@x>\r\n\r\nx\r\n", ["dev@lists.test"]
    )
    assert reply.startswith("451 4.3.0")
    assert _spooled(db) == []


def test_a_list_deleted_between_rcpt_and_data_gets_550(
    handler: ArchivingHandler, db: sessionmaker[Session]
) -> None:
    from listgate.db import transaction
    from listgate.lists import create, require

    with transaction(db) as s:
        create(s, "gone")
    env = Envelope()
    assert run(
        handler.handle_RCPT(fake_server(), _session(), env, "gone@lists.test", [])
    ).startswith("250")
    with transaction(db) as s:
        s.delete(require(s, "gone"))
    raw = b"From: a@example.org\r\nMessage-ID: <h4@x>\r\n\r\nx\r\n"
    assert _data(handler, raw, ["gone@lists.test"]).startswith("550 5.1.1")
    assert _data(handler, raw, ["gone@lists.test", "dev@lists.test"]).startswith("250")
    assert _spooled(db) == [("h4@x", "dev@lists.test")]


def _commits_fail(
    handler: ArchivingHandler, monkeypatch: pytest.MonkeyPatch, full: Callable[[], bool]
) -> None:
    """The spool's appends fail at their COMMIT while full()."""

    def at_commit(_driver: object, sql: str, _rows: object) -> None:
        if sql == "COMMIT" and full():
            raise OSError("database or disk is full")

    hook_appends(handler.spool, at_commit, monkeypatch)


def test_a_failed_commit_fails_the_whole_batch(
    handler: ArchivingHandler, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.answers import Answer, Arrival

    jobs = [
        Arrival(
            b"From: a@example.org\r\nMessage-ID: <c%d@x>\r\n\r\nx\r\n" % i,
            None,
            ("dev@lists.test",),
        )
        for i in range(3)
    ]
    refused = Arrival(b"A: 1\r\n\r\nx\n.\nevil\r\n", None, ("dev@lists.test",))
    _commits_fail(handler, monkeypatch, lambda: True)
    results = handler.store_batch([*jobs, refused])  # after the spool's INSERT, at its COMMIT
    monkeypatch.undo()
    assert [type(r) for r in results[:3]] == [OSError] * 3
    assert all("database or disk is full" in str(r) for r in results[:3])
    # a refusal stands whatever the commit did; its count goes back to the caller (not counted)
    last = results[3]
    assert isinstance(last, Answer) and last.problem is not None
    assert last.problem[1].startswith("554 5.5.2") and not last.counted
    assert _spooled(db) == []


def test_the_same_message_twice_is_archived_once(
    handler: ArchivingHandler, db: sessionmaker[Session]
) -> None:
    raw = b"From: a@example.org\r\nSubject: twice\r\nMessage-ID: <twice@x>\r\n\r\nx\r\n"
    assert through_hooks(handler, raw, "a@example.org", ["dev@lists.test"]).endswith("stored")
    # both spooled
    assert through_hooks(handler, raw, "a@example.org", ["dev@lists.test"]).endswith("stored")
    assert handler.archiver.drain() == 2
    with db() as s:
        assert [m.message_id for m in s.scalars(select(Message))] == ["twice@x"]
    assert through_hooks(handler, raw, "a@example.org", ["dev@lists.test"]).endswith(
        "already archived, not stored twice"
    )
    assert _spooled(db) == []


def test_a_count_that_cannot_be_written_changes_no_reply_is_logged_and_written_later(
    handler: ArchivingHandler, db: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    disk_full = threading.Event()
    disk_full.set()

    def sometimes(jobs: list[Job]) -> list[Result]:
        if disk_full.is_set():
            raise OSError("disk full")
        return handler.store_batch(jobs)

    def counted() -> dict[str, int]:
        handler.archiver.drain()
        with db() as s:
            return counters.values(s, counters.REFUSED)

    async def refuse_twice() -> tuple[str, dict[str, int]]:
        handler.count_refusal_soon("too-big")  # aiosmtpd's own refusals: not awaited
        reply = await handler.handle_RCPT(
            fake_server(), _session(), Envelope(), "no@lists.test", []
        )
        disk_full.clear()  # the disk has room again: the counts waiting are written
        for _ in range(200):  # 10 s
            if len(counted()) == 2:
                break
            await asyncio.sleep(0.05)
        return reply, counted()

    handler.writer = GroupWriter(sometimes, name="sometimes")
    handler.writer.start()
    try:
        reply, values = run(refuse_twice())
    finally:
        handler.writer.stop()
    assert reply.startswith("550 5.1.1 <no@lists.test>: no list named 'no'")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "could not count a refusal (unknown-list) now, it waits to be written: disk full" in (
        warnings
    )
    assert any(w.startswith("could not write 1 count (refused:too-big 1)") for w in warnings)
    assert values == {"too-big": 1, "unknown-list": 1}


def test_a_refusal_at_data_whose_count_the_commit_lost_is_counted_once_the_disk_has_room(
    handler: ArchivingHandler,
    db: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message refused for its shape keeps its 554 when the spool's commit fails; its count
    waits in memory and is written once the spool takes writes again (not lost)."""
    disk_full = threading.Event()
    disk_full.set()

    def counted() -> dict[str, int]:
        handler.archiver.drain()
        with db() as s:
            return counters.values(s, counters.REFUSED)

    async def refuse() -> tuple[str, dict[str, int]]:
        env = Envelope()
        env.mail_from, env.rcpt_tos = "a@example.org", ["dev@lists.test"]
        env.original_content = b"A: 1\r\n\r\nx\n.\nevil\r\n"  # a bare LF next to a '.' line
        reply = await handler.handle_DATA(fake_server(), _session(), env)
        disk_full.clear()
        for _ in range(200):  # 10 s
            if counted():
                break
            await asyncio.sleep(0.05)
        return reply, counted()

    _commits_fail(handler, monkeypatch, disk_full.is_set)
    reply, values = run(refuse())
    assert reply.startswith("554 5.5.2")
    assert values == {"smuggling": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith("could not count a refusal (smuggling)") for w in warnings), warnings
