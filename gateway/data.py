"""DATA as received: one growing buffer per message, within a per-message size and a shared memory
budget.

aiosmtpd keeps one bytearray per received line until the final dot (about 70 bytes per empty
line: 24 MB of bare CRLF lines held 866 MB). Here the lines go into one buffer, dot-unstuffed on
the way, so a message costs its own size; and every connection draws what it holds beyond a
small allowance from a budget shared by the whole gateway (and, at most a quarter of it, by one
client address). A connection that would go past the budget gets 421 and is closed: the sending
server retries later.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import defaultdict
from collections.abc import Callable

# what any connection may hold without drawing on the budget (small posts always fit)
FREE_BYTES = 64 * 1024
CHUNK = 256 * 1024  # the budget is drawn in chunks, not per line
OVER_BUDGET = "421 4.3.2 Too much mail being received at once, try again later"


class DataBudget:
    """Bytes of DATA held in memory by all connections together, and by each client address."""

    def __init__(self, total: int, max_message: int) -> None:
        # One client address: a quarter of the total, but always room for one message of the largest
        # size.
        self.per_client = max(total // 4, max_message + CHUNK)
        self.total = max(total, self.per_client)
        self._lock = threading.Lock()
        self._held = 0
        self._by_client: dict[str, int] = defaultdict(int)

    def take(self, client: str, n: int) -> bool:
        """Hold n more bytes for client; False (nothing held) when that would pass either limit."""
        with self._lock:
            if self._held + n > self.total or self._by_client[client] + n > self.per_client:
                return False
            self._held += n
            self._by_client[client] += n
            return True

    def give_back(self, client: str, n: int) -> None:
        """Release n bytes client held."""
        with self._lock:
            self._held -= n
            self._by_client[client] -= n
            if self._by_client[client] <= 0:
                del self._by_client[client]

    @property
    def held(self) -> int:
        """Bytes held now by all connections."""
        with self._lock:
            return self._held


class Incoming:
    """One message being received; read() until the final dot, then content(), then release()."""

    def __init__(
        self,
        budget: DataBudget,
        client: str,
        max_size: int,
        max_line: int,
        watch: Callable[[bytes], None] | None = None,
    ) -> None:
        self.budget, self.client = budget, client
        self.max_size, self.max_line = max_size, max_line
        self.watch = watch  # sees each line as received, before dot-unstuffing
        self.problem = ""  # "too-big", "line-too-long" or "over-budget"
        self._buf: io.BytesIO | None = io.BytesIO()
        self._held = 0  # drawn from the budget
        self._size = 0  # bytes received, as aiosmtpd counts them (CRLFs and stuffing dots included)

    async def read(self, reader: asyncio.StreamReader) -> None:
        """Take lines up to the final dot; on a limit, keep reading (and dropping) to the dot, as
        aiosmtpd does.

        Over the budget it returns at once (the caller answers 421 and closes).
        """
        partial = False  # inside a line longer than the reader's limit
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                self._fail("line-too-long")
                await reader.readexactly(exc.consumed)
                partial = True
                continue
            if partial:
                partial = False
                continue
            if line == b".\r\n":
                return
            self._size += len(line)
            if self._buf is not None and not self._add(line):
                return

    def _add(self, line: bytes) -> bool:
        """Buffer one line; False when the budget refused it."""
        if self._size > self.max_size:
            self._fail("too-big")
            return True
        if len(line) > self.max_line + 3:  # CRLF and a transparency dot
            self._fail("line-too-long")
            return True
        if self.watch is not None:
            self.watch(line)
        data = memoryview(line)[1:] if line[:1] == b"." else line
        buf = self._buf
        assert buf is not None
        short = buf.tell() + len(data) - FREE_BYTES - self._held
        if short > 0:
            more = -(-short // CHUNK) * CHUNK  # whole chunks (a line may be longer than one)
            if not self.budget.take(self.client, more):
                self._fail("over-budget")
                return False
            self._held += more
        buf.write(data)
        return True

    def _fail(self, problem: str) -> None:
        """Stop keeping the message: drop what was received (the budget is given back too)."""
        self.problem = self.problem or problem
        self._buf = None
        self.release()

    def content(self) -> bytes:
        """The message, dot-unstuffed (no copy: the buffer hands over its bytes)."""
        assert self._buf is not None and not self.problem
        data = self._buf.getvalue()
        self._buf = None
        return data

    def release(self) -> None:
        """Give back what this message drew from the budget (call when the message is done with)."""
        if self._held:
            self.budget.give_back(self.client, self._held)
            self._held = 0
