"""The DATA decision is one step of the group writer: messages that share a batch each get their
own answer, and the spool holds exactly the accepted ones.

Several real SMTP clients post at once while the writer is held on an earlier batch, so their
messages are decided and spooled together: one refused for smuggling, one from a banned sender,
one duplicate, stored ones, one held by a members-only list. Then a batch whose look-ups fail:
451 for every message that needed them, nothing of theirs spooled.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from gateway.answers import Arrival, Begun, Job, Result
from gateway.handler import GatewayHandler
from gateway.server import GatewayServer
from listgate import counters, lists
from listgate.archiver import Archiver
from listgate.db import session_factory, transaction, writer
from listgate.models import Ban, Message
from listgate.spool import Spooled, counts_of
from listgate.states import ListPolicy, PostState
from tests.support.gateway import Env, RawClient, mail
from tests.support.spool_faults import hook_appends

pytestmark = pytest.mark.integration
SMUGGLED = (
    b"From: ann@example.org\r\nSubject: first\r\nMessage-ID: <smuggle@x>\r\n\r\nhello\n.\n"
    b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<dev@lists.test>\r\nDATA\r\n"
    b"From: admin@example.org\r\nMessage-ID: <smuggled@x>\r\n\r\nevil\r\n.\r\n"
)


class Held:
    """Holds the writer on a first batch until the test's messages all wait behind it; keeps
    what each batch held, and counts the look-up statements the writer sends per batch."""

    def __init__(self, handler: GatewayHandler, server: GatewayServer) -> None:
        self.answer, self.server = handler.answer, server
        self.release = threading.Event()
        self.batches: list[list[Job]] = []
        self.statements: list[int] = []
        self.read = handler.answer.read
        handler.answer = self  # type: ignore[assignment]  # a double wrapping the handler's Answerer
        event.listen(self.read, "before_cursor_execute", self._count)

    def __call__(self, jobs: list[Job]) -> list[Result]:
        return self.finish(self.begin(jobs)[1])

    def begin(self, jobs: list[Job], behind: Begun | None = None) -> tuple[list[Result], Begun]:
        self.batches.append(list(jobs))
        if not self.release.is_set() and len(self.batches) == 1:
            self.release.wait(30)
        self.statements.append(0)
        return self.answer.begin(jobs, behind)

    def finish(self, begun: Begun) -> list[Result]:
        return self.answer.finish(begun)

    def _count(self, *_: Any) -> None:
        if threading.current_thread().name.startswith("store") and self.statements:
            self.statements[-1] += 1

    def hold(self) -> None:
        """Occupy the writer with a count alone; the next messages queue behind it."""
        self.server.writer.submit(Spooled(b"", None, (), "", ((counters.REFUSED, "held", 1),)))
        _wait(lambda: len(self.batches) == 1)

    def let_go_once(self, waiting: int) -> None:
        """Once `waiting` messages are queued, release the writer: they form the next batch."""
        _wait(lambda: self.server.writer._queue.qsize() >= waiting)
        self.release.set()

    def close(self) -> None:
        event.remove(self.read, "before_cursor_execute", self._count)


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture(params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Env, GatewayHandler, GatewayServer, Held]]:
    """Lists dev (open, troll@ banned, old@x archived) and club (members-only), and a gateway
    with no archiver (the spool keeps what it accepted) whose writer the test holds; on each
    database (PostgreSQL: the spool is a table beside the look-ups)."""
    database = {}
    if request.param == "postgresql":
        database["LISTGATE_DATABASE_URL"] = request.getfixturevalue("postgres_db")
    env = Env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="100000", **database)
    env.make_list("dev")
    env.make_list("club", policy=ListPolicy.MEMBERS)
    db = session_factory(writer(env.engine))
    with transaction(db) as s:
        s.add(Ban(list_id=lists.require(s, "dev").id, address="troll@example.org", reason="abuse"))
    handler = GatewayHandler(env.settings, db)
    server = GatewayServer(env.settings, handler)
    server.start()
    with smtplib.SMTP("127.0.0.1", env.settings.smtp_port, timeout=30) as c:
        c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid="old@x"))
    Archiver(env.settings, db, enqueue=lambda _: 0).drain()
    held = Held(handler, server)
    try:
        yield env, handler, server, held
    finally:
        held.close()
        server.stop()
        handler.spool.close()
        env.engine.dispose()


def _send(port: int, sender: str, rcpt: str, raw: bytes, replies: dict[str, str], key: str) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
            c.ehlo()
            c.mail(sender)
            c.rcpt(rcpt)
            code, text = c.data(raw)
        replies[key] = f"{code} {text.decode()}"
    except Exception as exc:  # noqa: BLE001 - the test reports what the client saw
        replies[key] = f"client error {exc!r}"


def _smuggle(port: int, replies: dict[str, str]) -> None:
    c = RawClient(port)
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<ann@example.org>")
    c.cmd("RCPT TO:<dev@lists.test>")
    c.cmd("DATA")
    c.send(SMUGGLED)
    replies["smuggling"] = c.reply()
    c.close()


def _posts(port: int) -> dict[str, tuple[str, str, bytes]]:
    """What each client sends: (envelope sender, recipient, bytes), by what it should become."""
    return {
        "stored1": ("ann@example.org", "dev@lists.test", mail(msgid="new1@x")),
        "stored2": (
            "bob@example.org",
            "dev@lists.test",
            mail(msgid="new2@x", frm="bob@example.org"),
        ),
        "stored3": ("cy@example.org", "dev@lists.test", mail(msgid="new3@x", frm="cy@example.org")),
        "duplicate": ("ann@example.org", "dev@lists.test", mail(msgid="old@x")),
        "banned": ("ann@example.org", "dev@lists.test", mail(msgid="t@x", frm="troll@example.org")),
        "held": ("eve@example.org", "club@lists.test", mail(msgid="club@x", frm="eve@example.org")),
    }


def _post_all(
    port: int, held: Held, smuggle: bool = True, only: tuple[str, ...] = ()
) -> dict[str, str]:
    """Every client (or those named) at once, behind the held writer; their replies by name."""
    replies: dict[str, str] = {}
    posts = {k: post for k, post in _posts(port).items() if not only or k in only}
    threads = [
        threading.Thread(target=_send, args=(port, *args, replies, key))
        for key, args in posts.items()
    ]
    if smuggle:
        threads.append(threading.Thread(target=_smuggle, args=(port, replies)))
    held.hold()
    for t in threads:
        t.start()
    held.let_go_once(len(threads))
    for t in threads:
        t.join(60)
    return replies


def _spool(handler: GatewayHandler) -> tuple[set[tuple[str, str]], list[str]]:
    """(Message-ID, recipients) of the mail spooled, and the counts of every spooled row."""
    rows = handler.spool.pending(1000)
    return {(r.message_id, r.rcpt_tos) for r in rows if r.rcpt_tos}, [
        f"{name}:{label}" for r in rows for name, label, n in counts_of(r.counts) for _ in range(n)
    ]


def test_messages_sharing_a_batch_each_get_their_own_answer(
    site: tuple[Env, GatewayHandler, GatewayServer, Held],
) -> None:
    env, handler, _server, held = site
    replies = _post_all(env.settings.smtp_port, held)
    # the seven messages were decided and spooled together, in one batch after the held one
    assert [sum(isinstance(j, Arrival) for j in batch) for batch in held.batches] == [0, 7]
    assert replies == {
        "stored1": "250 2.0.0 OK: stored",
        "stored2": "250 2.0.0 OK: stored",
        "stored3": "250 2.0.0 OK: stored",
        "duplicate": "250 2.0.0 OK: already archived, not stored twice",
        "banned": "550 5.7.1 <dev@lists.test>: not accepted: "
        "troll@example.org is banned from posting to this list",
        "held": "250 2.0.0 OK: held for moderation",
        "smuggling": "554 5.5.2 Refused: a bare CR or LF next to a '.' line (SMTP smuggling); "
        "use CRLF line ends",
    }
    mail_rows, counts = _spool(handler)
    assert mail_rows == {
        ("new1@x", "dev@lists.test"),
        ("new2@x", "dev@lists.test"),
        ("new3@x", "dev@lists.test"),
        ("club@x", "club@lists.test"),
    }
    assert sorted(counts) == sorted(
        ["refused:held", "refused:smuggling", "refused:banned"] + ["received:"] * 6
    )
    # the look-ups of the whole batch: BEGIN, the lists once, per list its bans and archived ids
    # (and club's members), and the duplicate's bytes: as many for 3 stored messages as for 1
    assert held.statements[1] <= 8
    drained = Archiver(env.settings, session_factory(writer(env.engine)), enqueue=lambda _: 0)
    drained.drain()
    with env.db() as s:
        archived = {
            (m.message_id, m.status)
            for m in s.scalars(select(Message).where(Message.message_id != "old@x"))
        }
        olds = s.scalars(select(Message).where(Message.message_id == "old@x")).all()
    assert archived == {
        ("new1@x", PostState.VISIBLE),
        ("new2@x", PostState.VISIBLE),
        ("new3@x", PostState.VISIBLE),
        ("club@x", PostState.HELD),
    }
    assert len(olds) == 1


def test_a_batch_is_read_by_one_statement_and_spooled_as_it_came(
    site: tuple[Env, GatewayHandler, GatewayServer, Held],
) -> None:
    """A batch nothing refuses: the archive database is asked one statement for the whole batch,
    and the spool one INSERT (on the driver's cursor: Spool.write_rows); each spool row keeps the
    envelope and the exact bytes its client sent."""
    env, handler, _server, held = site
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name.startswith("store") and len(held.batches) == 2:
            sent.append(statement.split(None, 1)[0])

    def appended(_driver: Any, sql: str, _rows: Any) -> None:
        if len(held.batches) == 2 and sql.startswith("INSERT"):
            sent.append("spool INSERT")

    # the archive's engine, and the look-ups' own on PostgreSQL (listgate.db.look_ups)
    engines = [env.engine] + ([held.read] if held.read.pool is not env.engine.pool else [])
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    hook_appends(handler.spool, appended)
    try:
        replies = _post_all(
            env.settings.smtp_port, held, smuggle=False, only=("stored1", "stored2", "held")
        )
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    assert replies == {
        "stored1": "250 2.0.0 OK: stored",
        "stored2": "250 2.0.0 OK: stored",
        "held": "250 2.0.0 OK: held for moderation",
    }
    assert [sum(isinstance(j, Arrival) for j in batch) for batch in held.batches] == [0, 3]
    # the batch's own: one SELECT, one INSERT; before them, the held batch's INSERT, sent as this
    # batch began: on SQLite alone first, on PostgreSQL in the SELECT's round trip (its pipeline)
    if handler.spool.postgresql:
        assert sent == ["SELECT", "spool INSERT", "spool INSERT"]
    else:
        assert sent == ["spool INSERT", "SELECT", "spool INSERT"]
    posts = _posts(env.settings.smtp_port)
    rows = {r.message_id: r for r in handler.spool.pending(1000) if r.rcpt_tos}
    for key in ("stored1", "stored2", "held"):
        sender, rcpt, raw = posts[key]
        msgid = raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode()
        row = rows.pop(msgid)
        assert (row.mail_from, row.rcpt_tos, row.counts, row.raw) == (
            sender,
            rcpt,
            "received:\t1",
            raw,
        )
    assert rows == {}


def test_a_batch_whose_look_ups_fail_is_answered_451_and_spools_nothing(
    site: tuple[Env, GatewayHandler, GatewayServer, Held],
) -> None:
    env, handler, _server, held = site
    armed = threading.Event()

    def fail(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if armed.is_set() and threading.current_thread().name.startswith("store"):
            raise OperationalError(statement, {}, Exception("disk I/O error"))

    event.listen(held.read, "before_cursor_execute", fail)
    held.release.clear()
    original = held.let_go_once

    def arm_then_release(waiting: int) -> None:
        _wait(lambda: held.server.writer._queue.qsize() >= waiting)
        armed.set()  # every client is past RCPT: only the batch's look-ups fail
        held.release.set()

    held.let_go_once = arm_then_release  # type: ignore[method-assign]  # this test arms it itself
    try:
        replies = _post_all(env.settings.smtp_port, held)
    finally:
        armed.clear()
        held.let_go_once = original  # type: ignore[method-assign]  # and puts it back
        event.remove(held.read, "before_cursor_execute", fail)
    smuggled = replies.pop("smuggling")
    assert set(replies.values()) == {
        "451 4.3.0 Temporary storage failure, please try again later"
    }, replies
    # it needed no look-up: its refusal stands (and is counted)
    assert smuggled.startswith("554 5.5.2")
    mail_rows, counts = _spool(handler)
    assert mail_rows == set()
    assert sorted(counts) == sorted(
        ["refused:held", "refused:smuggling"] + ["refused:storage-failure"] * 6
    )
