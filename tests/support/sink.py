"""An SMTP sink for tests: a real aiosmtpd server that
records every message it accepts (fixtures `sink`, `msink`).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.config import free_port


@dataclass
class Received:
    """One message as the sink got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> Message:
        """The parsed message."""
        return message_from_bytes(self.data)


def payload(part: Message) -> bytes:
    """A single part's body, transfer-decoded (an AssertionError for a multipart)."""
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes), f"a {part.get_content_type()} part has no single body"
    return data


def enclosed(part: Message) -> Message:
    """The mail a message/rfc822 part carries."""
    inner = part.get_payload(0)
    assert isinstance(inner, Message), f"a {part.get_content_type()} part encloses no mail"
    return inner


@dataclass
class Stall:
    """The sink holding one recipient's transaction at a step until released: `reached` is set
    when the transaction gets there (at RCPT before the message, at DATA after the message was
    recorded as received and before the sink's 250 to the final dot)."""

    at: str
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def hold(self) -> None:
        self.reached.set()
        await asyncio.to_thread(self.released.wait, 60)  # at most a minute: a test that failed


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Replies to give instead of 250, consumed one per DATA (e.g. ["451 4.3.0 try later"]).
    scripted: list[str] = field(default_factory=list)
    # Recipients refused at RCPT, with the reply (e.g.
    # {"gone@example.org": "550 5.1.1 User unknown"}).
    refused_rcpts: dict[str, str] = field(default_factory=dict)
    stalls: dict[str, Stall] = field(default_factory=dict)  # by recipient (SmtpSink.stall)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.lock:
            refusal = self.refused_rcpts.get(address)
        if refusal:
            return refusal
        stall = self.stalls.get(address)
        if stall is not None and stall.at == "RCPT":
            await stall.hold()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.scripted:
                return self.scripted.pop(0)
            self.received.append(
                Received(
                    envelope.mail_from or "",
                    list(envelope.rcpt_tos),
                    envelope.original_content or b"",
                )
            )
            stall = next((self.stalls[a] for a in envelope.rcpt_tos if a in self.stalls), None)
        if stall is not None and stall.at == "DATA":
            await stall.hold()
        return "250 2.0.0 OK"


class _Controller(Controller):
    """aiosmtpd's threaded controller, knowing its open connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        smtp = super().factory()
        self.connections.add(smtp)
        return smtp

    async def close_connections(self) -> None:
        for smtp in list(self.connections):
            if smtp.transport is not None:
                smtp.transport.close()
        await asyncio.sleep(0)  # the transports' connection_lost runs, their sockets close
        await asyncio.sleep(0)


class SmtpSink:
    """Start/stop an aiosmtpd sink on 127.0.0.1:port; inspect .received.

    Like a standard relay it refuses a message with a line over 1,001 bytes (aiosmtpd's RFC 5321
    limit: "500 Line too long") and, given data_size_limit, advertises and enforces SIZE.
    """

    # What the site's database counted as sent before this sink's first message (a view of a
    # shared sink starts later: tests.support.shared_stack).
    recorded_before = 0

    def __init__(self, port: int, **smtp_kwargs: Any) -> None:  # aiosmtpd SMTP()'s options
        self.port = port
        self.handler = _Handler()
        self.controller = _Controller(self.handler, hostname="127.0.0.1", port=port, **smtp_kwargs)

    @property
    def url(self) -> str:
        """The value for LISTGATE_OUTBOUND."""
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        """Everything accepted so far."""
        with self.handler.lock:
            return list(self.handler.received)

    def script(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies instead of 250."""
        with self.handler.lock:
            self.handler.scripted.extend(replies)

    def stall(self, address: str, at: str) -> Stall:
        """Hold the next transactions to address at RCPT or DATA (see Stall) until released."""
        assert at in ("RCPT", "DATA")
        with self.handler.lock:
            stall = self.handler.stalls[address] = Stall(at)
        return stall

    def to(self, address: str) -> list[Received]:
        """Messages whose envelope recipients include address."""
        return [r for r in self.received if address in r.rcpt_tos]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least count messages arrived (or timeout); returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                break
            time.sleep(0.05)
        return self.received

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        """Stop as a relay going down does: the connections still open are closed first (a
        client in the middle of a session, e.g. a gateway's size probe, sees the connection
        closed), so none is left to the garbage collector as an unclosed transport."""
        if self.controller.loop.is_running():
            asyncio.run_coroutine_threadsafe(
                self.controller.close_connections(), self.controller.loop
            ).result(timeout=10)
        self.controller.stop()


def running_sink() -> Iterator[SmtpSink]:
    s = SmtpSink(port=free_port())
    s.start()
    yield s
    s.stop()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real aiosmtpd server on loopback that keeps what it receives."""
    yield from running_sink()


@pytest.fixture
def own_sink() -> Iterator[SmtpSink]:
    """The same, where a module's `sink` is another (tests.support.shared_stack's view)."""
    yield from running_sink()


@pytest.fixture(scope="module")
def msink() -> Iterator[SmtpSink]:
    """One such server for all the tests of a module (they clear it between tests as they need)."""
    yield from running_sink()
