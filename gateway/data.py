"""DATA as received: one growing buffer per message, within a per-message size and a shared memory
budget.

aiosmtpd keeps one bytearray per received line until the final dot (about 70 bytes per empty
line: 24 MB of bare CRLF lines held 866 MB). Here the lines go into one buffer, dot-unstuffed on
the way, so a message costs its own size; and every connection draws what it holds beyond a
small allowance from a budget shared by the whole gateway (and, at most a quarter of it, by one
client address). A line still being received counts too (a line of max_line bytes is held until it
ends), and the stream reader under it buffers at most about READER_LIMIT bytes whatever max_line is.
A connection that would go past the budget gets 421 and is closed: the sending server retries later.

The lines are taken in bulk, not one by one: whatever the stream reader holds up to the final
dot, checked and unstuffed with a few bytes methods per run of lines, with the same outcome as
aiosmtpd's line-by-line reading (tests/unit/gateway/test_data_reader.py keeps that as the oracle).
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
# The stream reader's limit: asyncio buffers up to twice this (and one socket read) per connection
# before it stops reading. Commands are far shorter; DATA is read past it in runs (Incoming).
READER_LIMIT = 16 * 1024
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


END = b"\r\n.\r\n"  # the final dot, after the CRLF that ends the last line
DOT_LINE_END = END[2:]  # what ends a "." line, or any line whose last byte is a dot


def _matched(tail: bytes) -> int:
    """How many bytes of END (0 to 4) the bytes taken so far end with."""
    for k in (4, 3, 2, 1):
        if tail.endswith(END[:k]):
            return k
    return 0


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
        # sees runs of whole lines as received where a line starts with a dot, before unstuffing
        self.watch = watch
        self.problem = ""  # "too-big", "line-too-long" or "over-budget"
        self._buf: io.BytesIO | None = io.BytesIO()
        self._held = 0  # drawn from the budget
        self._size = 0  # bytes received, as aiosmtpd counts them (CRLFs and stuffing dots included)
        self._pending = b""  # the start of a line not yet ended
        self._tail = b"\r\n"  # the last bytes taken (DATA starts where a line starts)
        self._probe = True  # at a line start: look at the next three bytes alone
        self._whole = False  # search for the final dot whole (none can straddle what was taken)

    async def read(self, reader: asyncio.StreamReader) -> None:
        """Take what the reader holds up to the final dot, in runs of whole lines; on a limit,
        keep reading (and dropping) to the dot, as aiosmtpd does.

        Never a byte past the final dot is taken: a pipelining client's next command stays in the
        reader. Over the budget it returns at once (the caller answers 421 and closes).
        """
        while True:
            chunk, final = await self._next(reader)
            if not self._take(chunk, final) or final:
                return

    async def _next(self, reader: asyncio.StreamReader) -> tuple[bytes, bool]:
        """The next bytes, up to the final dot at most, and whether they end with it.

        Public StreamReader calls only: a search for END takes everything before it (or before the
        last bytes that could begin it) in one call, so only where a final dot may begin in bytes
        already taken (DATA's start, a CRLF just taken) is a shorter step needed.
        """
        k = 0 if self._whole else _matched(self._tail)
        try:
            if k >= 3 or (k == 2 and self._probe):  # the next bytes alone say if the dot is here
                chunk = await reader.readexactly(len(END) - k)
                final, self._probe = chunk == END[k:], False
            elif k == 0:
                chunk, final = await reader.readuntil(END), True
            else:  # a CR or CRLF taken last: look for "." CRLF, then at the two bytes before it
                chunk = await reader.readuntil(DOT_LINE_END)
                final = (self._tail[-2:] + chunk[-5:-3])[-2:] == b"\r\n"
                self._probe = True
        except asyncio.LimitOverrunError as exc:  # what was searched for begins after consumed
            chunk, final = await reader.readexactly(exc.consumed), False
            self._tail = (self._tail + chunk[-4:])[-4:]
            # After a search for END nothing taken begins it; after one for "." CRLF, only a CR
            # or CRLF taken last can.
            self._whole, self._probe = k == 0 or _matched(self._tail) > 2, False
            return chunk, final
        self._tail = (self._tail + chunk[-4:])[-4:]
        return chunk, final

    def _take(self, chunk: bytes, final: bool) -> bool:
        """Keep the whole lines received so far (before the final dot); False over the budget."""
        if self._buf is None:
            return True  # dropping to the final dot
        text = self._pending + chunk if self._pending else chunk
        if final:
            whole, self._pending = text[: -len(DOT_LINE_END)], b""
        else:
            cut = text.rfind(b"\r\n") + 2  # 1: no line ended (taken as 0 below)
            whole, self._pending = (text[:cut], text[cut:]) if cut > 1 else (b"", text)
        if whole and not self._lines(whole):
            return False
        pending = self._pending
        if self._buf is not None and len(pending) - pending.endswith(b"\r") > self.max_line + 3:
            self._fail("line-too-long")  # longer than the reader's limit, whatever comes next
        # The line still coming is held too. Its first two bytes may turn out to be a stuffing
        # dot or the final dot's: not counted, so a message never holds more than it will keep.
        buf = self._buf
        return buf is None or self._hold(buf.tell() + max(0, len(pending) - 2))

    def _lines(self, whole: bytes) -> bool:
        """Keep whole lines as received up to the first over a limit; False over the budget."""
        cut, problem = self._limit(whole)
        kept = whole[:cut] if cut < len(whole) else whole
        if kept:
            data: bytes | memoryview = kept
            if b"\r\n." in kept or kept[:1] == b".":  # a line starts with a dot
                if self.watch is not None:
                    self.watch(kept)
                data = kept.replace(b"\r\n.", b"\r\n")  # dot-unstuffing (the first line below)
                if kept[:1] == b".":
                    data = memoryview(data)[1:]
            buf = self._buf
            assert buf is not None
            if not self._hold(buf.tell() + len(data)):
                return False
            buf.write(data)
            self._size += len(kept)
        if problem:
            self._fail(problem)
        return True

    def _hold(self, size: int) -> bool:
        """Draw from the budget what holding size bytes needs beyond the allowance (whole chunks:
        a line may be longer than one); False, and the message dropped, over the budget."""
        short = size - FREE_BYTES - self._held
        if short > 0:
            more = -(-short // CHUNK) * CHUNK
            if not self.budget.take(self.client, more):
                self._fail("over-budget")
                return False
            self._held += more
        return True

    def _limit(self, whole: bytes) -> tuple[int, str]:
        """Where in whole lines the first one over a limit starts, and which limit (or "").

        As aiosmtpd counts: a message is too big at the line that takes it past max_size, a line
        is too long past max_line + 3 bytes with its CRLF and a transparency dot; when one line
        is both, it is too long only if longer than the reader's limit (aiosmtpd never sizes it).
        """
        end = len(whole)
        long_at = big_at = end
        overrun = False
        pos, span = 0, self.max_line + 3  # a line of max_line + 1 bytes and its CRLF fit a span
        while pos < end:  # from a line's start, to the last line end within a span
            last = whole.rfind(b"\r\n", pos, pos + span)
            if last < 0:  # the line at pos is too long
                long_at = pos
                overrun = whole.find(b"\r\n", pos) - pos > self.max_line + 3
                break
            pos = last + 2
        room = self.max_size - self._size
        if end > room:
            at = whole.rfind(b"\r\n", 0, room)  # the line holding byte number room starts after
            big_at = at + 2 if at >= 0 else 0
        if long_at < big_at or (long_at == big_at < end and overrun):
            return long_at, "line-too-long"
        return big_at, "too-big" if big_at < end else ""

    def _fail(self, problem: str) -> None:
        """Stop keeping the message: drop what was received (the budget is given back too)."""
        self.problem = self.problem or problem
        self._buf = None
        self._pending = b""  # read on to the final dot, holding nothing
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
