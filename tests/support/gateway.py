"""An in-process gateway for integration tests (fixtures
`env`, `make_env`), and small SMTP/DB helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

import pytest
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from gateway.protocol import GatewayLMTP, GatewaySMTP
from gateway.server import GatewayServer
from listgate import lists
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import MailingList, Message, OutboxEntry
from listgate.schema import upgrade
from listgate.spool import Spool
from tests.support.config import make_settings
from tests.support.factories import ListOptions


@dataclass
class Recorder:
    """Stands in for the broker: remembers what would have been sent."""

    entries: list[OutboxEntry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, entries: list[OutboxEntry]) -> int:
        with self.lock:
            self.entries.extend(entries)
        return len(entries)

    def kinds(self, expected: int = 0, timeout: float = 10.0) -> list[str]:
        """Task names sent so far; first waits (up to timeout) for `expected` of them: the archiver
        hands its outbox entries over just after the commit that the database assertions see."""
        deadline = time.monotonic() + timeout
        while len(self.entries) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            return [e.kind for e in self.entries]


@dataclass
class RunningGateway:
    """A started gateway: where it listens and what it enqueued."""

    server: GatewayServer
    settings: Settings
    enqueued: Recorder

    @property
    def port(self) -> int:
        return self.settings.smtp_port

    def stop(self) -> None:
        self.server.stop()


def start_gateway(
    settings: Settings,
    db: sessionmaker[Session],
    *,
    lmtp: bool = False,
    listen: tuple[str, int] | Path | None = None,
) -> RunningGateway:
    """Start a gateway on settings.smtp_port (or `listen`),
    archiving in-process, with a recording broker.
    """
    rec = Recorder()
    db = db.factory if isinstance(db, Settled) else db
    handler = GatewayHandler(settings, db)
    server = GatewayServer(
        settings, handler, lmtp=lmtp, listen=listen, archiver=Archiver(settings, db, enqueue=rec)
    )
    server.start()
    return RunningGateway(server, settings, rec)


class Settled(sessionmaker[Session]):
    """A session factory for a test's assertions: each session starts once the spool is archived.

    A sessionmaker itself (same bind and options as FACTORY), so it goes wherever one does.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        super().__init__(**factory.kw)
        self.factory = factory

    def __call__(self, **kwargs: Any) -> Session:
        settle(self.factory)
        return self.factory(**kwargs)


def settle(db: sessionmaker[Session] | Settled, timeout: float = 30.0) -> None:
    """Wait until the archiver has taken everything
    spooled (a 250 means spooled, not yet archived).
    """
    db = db.factory if isinstance(db, Settled) else db
    deadline = time.monotonic() + timeout
    spool = Spool(db.kw["bind"])
    try:
        while True:
            with db() as s:
                pending = spool.depth(s).pending
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pending} spooled messages still not archived after {timeout}s"
                )
            time.sleep(0.02)
    finally:
        spool.close()


def messages(db: sessionmaker[Session], list_name: str | None = None) -> list[Message]:
    """Archived (or held) messages, optionally of one list, oldest row first."""
    settle(db)
    with db() as s:
        q = select(Message).order_by(Message.id)
        if list_name:
            q = q.join(MailingList, MailingList.id == Message.list_id).where(
                MailingList.name == list_name
            )
        return list(s.scalars(q))


def outbox_kinds(db: sessionmaker[Session]) -> list[str]:
    """The kinds of every outbox entry recorded."""
    settle(db)
    with db() as s:
        return list(s.scalars(select(OutboxEntry.kind).order_by(OutboxEntry.id)))


def count(db: sessionmaker[Session], model: type) -> int:
    """Rows of a model (once the spool is archived)."""
    settle(db)
    with db() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def mail(
    subject: str = "Hello",
    msgid: str = "m1@example.org",
    frm: str = "Ann <ann@example.org>",
    extra: str = "",
    body: str = "Hello list\r\n",
    to: str = "dev@lists.test",
) -> bytes:
    """A small well-formed message."""
    head = (
        f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    )
    if msgid:
        head += f"Message-ID: <{msgid}>\r\n"
    return (head + extra + "\r\n" + body).encode()


class RawClient:
    """A line-level SMTP client over a plain socket (for what smtplib refuses to send)."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None) -> None:
        """Connect (from the loopback address `source` when given) and read the greeting."""
        self.sock = socket.create_connection(
            (host, port), timeout=20, source_address=(source, 0) if source else None
        )
        self.buf = b""
        self.greeting = self.reply()

    def reply(self) -> str:
        """Read one (possibly multi-line) reply."""
        lines: list[str] = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines) or "<closed>"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def send(self, data: bytes) -> None:
        """Send data; a server that closed the connection before taking all of it (a refused
        1 MB line) has said why in its last reply, which reply() reads, or "<closed>"."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(data)

    def cmd(self, line: str) -> str:
        """Send a command, read its reply."""
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def raw_of(db: sessionmaker[Session], message_id: str) -> bytes:
    """The stored bytes of a message (first list it is on)."""
    with db() as s:
        msg = s.scalars(
            select(Message).where(Message.message_id == message_id).order_by(Message.id)
        ).first()
        assert msg is not None, f"{message_id} is not archived"
        return msg.raw.data


def archived_ids(db: sessionmaker[Session], list_name: str = "dev") -> list[str]:
    """Message-IDs archived on a list, one entry per stored row (once the spool is archived)."""
    settle(db)
    with db() as session:
        mlist = lists.require(session, list_name)
        return list(session.scalars(select(Message.message_id).where(Message.list_id == mlist.id)))


def message_count(db: sessionmaker[Session]) -> int:
    """Rows in the messages table, read without the write lock (a writer factory's BEGIN IMMEDIATE
    would wait for a busy archiver's batches, and see many at once)."""
    with db.kw["bind"].connect() as conn:
        return (
            conn.execution_options(sqlite_begin="").scalar(
                select(func.count()).select_from(Message)
            )
            or 0
        )


class Env:
    """A migrated database, lists and a running gateway built from LISTGATE_* overrides."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.settings = make_settings(tmp_path, **env)
        self.engine = make_engine(self.settings)
        upgrade(self.engine)
        # assertions see the archive once the spool is empty
        self.db = Settled(session_factory(writer(self.engine)))
        self.gw: RunningGateway | None = None

    def make_list(self, name: str = "dev", **kwargs: Unpack[ListOptions]) -> None:
        """Create the list NAME@lists.test."""
        with transaction(self.db) as s:
            lists.create(s, name, **kwargs)

    def start(self, *, lmtp: bool = False, listen: tuple[str, int] | Path | None = None) -> Env:
        """Start the gateway (start_gateway's options)."""
        self.gw = start_gateway(self.settings, self.db, lmtp=lmtp, listen=listen)
        return self

    def smtp(self) -> smtplib.SMTP:
        """An SMTP client connected to the gateway."""
        return smtplib.SMTP("127.0.0.1", self.settings.smtp_port, timeout=30)

    def close(self) -> None:
        """Stop the gateway and close the database."""
        if self.gw:
            self.gw.stop()
        self.engine.dispose()


def dev_gateway(tmp_path: Path, **env: str) -> Iterator[Env]:
    """A started gateway with the open list dev@lists.test, closed when the generator ends."""
    e = Env(tmp_path, **env)
    try:
        e.make_list("dev")
        e.start()  # a port taken: the database is still closed below
        yield e
    finally:
        e.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A gateway with the list dev@lists.test (open)."""
    yield from dev_gateway(tmp_path)


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    """Build an Env with settings overrides; started by the test."""
    made: list[Env] = []

    def make(**env: str) -> Env:
        e = Env(tmp_path / f"e{len(made)}", **env)
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


def through_hooks(handler: GatewayHandler, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
    """One transaction through the handler's hooks as aiosmtpd calls them (MAIL, RCPT, DATA).

    Returns the DATA reply, or the first MAIL/RCPT reply that is not a 250. The peer is a unix
    socket (no client address), so the per-client rate limit never answers for the test.
    """

    async def transaction() -> str:
        protocol = GatewayLMTP if handler.lmtp else GatewaySMTP
        server = protocol(handler, max_line=handler.settings.max_line_length)
        session, envelope = SmtpSession(asyncio.get_running_loop()), Envelope()
        session.peer = ""
        reply = await handler.handle_MAIL(server, session, envelope, mail_from, [])
        for address in rcpt_tos:
            if not reply.startswith("250"):
                return reply
            reply = await handler.handle_RCPT(server, session, envelope, address, [])
        if not reply.startswith("250"):
            return reply
        envelope.original_content = raw
        return await handler.handle_DATA(server, session, envelope)

    return asyncio.run(transaction())
