"""A minimal SMTP receiver that counts: the fan-out benchmark's relay.

aiosmtpd spends 0.9-1.3 ms of CPU on every message it receives; on a 2-core machine that is
more than the worker it is meant to measure (about 0.6 ms per copy), so the fan-out figure
would be the sink's. This receiver speaks the SMTP a relay must (EHLO/HELO, MAIL, RCPT, DATA
ending at CRLF.CRLF, RSET, NOOP, QUIT; PIPELINING advertised, commands answered in order),
answers 250 to every message after its final dot, counts it, and keeps nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

END = b"\r\n.\r\n"


@dataclass
class Tally:
    """Messages and recipients received, and when the first and last message ended."""

    count: int = 0
    recipients: int = 0
    first: float = 0.0
    last: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, recipients: int) -> None:
        """Count one message."""
        now = time.perf_counter()
        with self.lock:
            self.count += 1
            self.recipients += recipients
            self.first = self.first or now
            self.last = now


class SinkProtocol(asyncio.Protocol):
    """One SMTP session: command lines, or the body of a DATA until CRLF.CRLF."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.in_data = False
        self.rcpts = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._reply(b"220 bench-sink ESMTP")

    def _reply(self, line: bytes) -> None:
        assert self.transport is not None
        self.transport.write(line + b"\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.in_data:
                if not self._body():
                    return
            elif not self._command():
                return

    def _body(self) -> bool:
        end = self.buffer.find(END)
        if end < 0:
            if len(self.buffer) > 8:  # keep only what may start the terminator
                del self.buffer[: len(self.buffer) - 4]
            return False
        del self.buffer[: end + len(END)]
        self.in_data = False
        self.tally.add(self.rcpts)
        self.rcpts = 0
        self._reply(b"250 2.0.0 OK")
        return True

    def _command(self) -> bool:
        end = self.buffer.find(b"\r\n")
        if end < 0:
            return False
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        verb = line[:4].upper()
        if verb == b"EHLO":
            self._reply(b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 67108864")
        elif verb == b"RCPT":
            self.rcpts += 1
            self._reply(b"250 2.1.5 OK")
        elif verb == b"DATA":
            self.in_data = True
            self.buffer[:0] = b"\r\n"  # the body may be empty: ".\r\n" right after DATA
            self._reply(b"354 End data with <CR><LF>.<CR><LF>")
        elif verb == b"QUIT":
            self._reply(b"221 2.0.0 Bye")
            assert self.transport is not None
            self.transport.close()
        elif verb == b"RSET":
            self.rcpts = 0
            self._reply(b"250 2.0.0 OK")
        elif verb in (b"HELO", b"MAIL", b"NOOP"):
            self._reply(b"250 2.0.0 OK")
        else:
            self._reply(b"502 5.5.2 Command not implemented")
        return True


class Sink:
    """The receiver on 127.0.0.1:port, served by an event loop in a thread of this process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.tally = Tally()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-sink", daemon=True)
        self.server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        """Listen, and serve in the background."""
        self.thread.start()
        make = self.loop.create_server(
            lambda: SinkProtocol(self.tally), "127.0.0.1", self.port, backlog=512
        )
        self.server = asyncio.run_coroutine_threadsafe(make, self.loop).result(10)

    def stop(self) -> None:
        """Close the listener and the loop."""
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()
