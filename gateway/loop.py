"""The listener's event loop: out of file descriptors, it pauses accepting, quietly, and resumes.

asyncio (before CPython gh-151615) answers accept() failing with EMFILE by pausing the listening
socket for a second, but then goes on calling accept() up to the backlog (100) times, each
failure scheduling one more resume and logging one more traceback: each second the resumes
multiply. Measured on a gateway with 160 fds and 300 connections: 1.1 GB of log in four minutes,
the loop busy with nothing else. Here accept() stops at the first such failure (as asyncio does
since that fix), and the failure is logged at most once a minute, without a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import Any

log = logging.getLogger(__name__)

OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's message for them
QUIET = 60.0  # seconds between two log lines about it


class _Exhausted:
    """A listening socket whose accept() says 'nothing waits' once it failed for lack of fds."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.failed = False

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failed:
            raise BlockingIOError
        try:
            return self.sock.accept()
        except OSError as exc:
            self.failed = exc.errno in OUT_OF_RESOURCES
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class ListenerLoop(asyncio.SelectorEventLoop):
    """The loop the gateway's listener runs on (aiosmtpd's Controller takes it)."""

    def __init__(self) -> None:
        super().__init__()
        self._noted = -QUIET
        self.set_exception_handler(self._quieter)

    def _accept_connection(self, protocol_factory: Any, sock: Any, *args: Any, **kw: Any) -> None:
        """asyncio's accept loop, ended by the first failure for lack of fds (paused a second)."""
        raw = sock.sock if isinstance(sock, _Exhausted) else sock
        super()._accept_connection(protocol_factory, _Exhausted(raw), *args, **kw)  # type: ignore[misc]

    def _quieter(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Log a failed accept() at most once a minute, in one line; the rest as asyncio does."""
        if context.get("message") != ACCEPT_FAILED:
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._noted >= QUIET:
            self._noted = now
            log.warning(
                "not accepting connections for a second: %s (the process's fd limit is too low "
                "for LISTGATE_MAX_CONNECTIONS, or something else holds fds); said once a minute",
                context.get("exception"),
            )
