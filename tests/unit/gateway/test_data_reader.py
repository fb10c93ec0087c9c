"""The DATA reader against its specification: the line-by-line reader it replaced, kept here as the
oracle. Both read the same bytes through a real asyncio.StreamReader fed in the same pieces; they
must agree on what is stored, the problem, the size, the smuggled-dot flag, the budget held and the
bytes left unread for aiosmtpd's command loop (a pipelining client's next command)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway import data
from listgate.mail.shape import dot_line_with_bare_end

CLIENT = "192.0.2.1"
END = b"\r\n.\r\n"


class LineByLine(data.Incoming):
    """The reader before it read in bulk: one readuntil and one _add per line (the oracle)."""

    async def read(self, reader: asyncio.StreamReader) -> None:
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
        if self._size > self.max_size:
            self._fail("too-big")
            return True
        if len(line) > self.max_line + 3:
            self._fail("line-too-long")
            return True
        if self.watch is not None:
            self.watch(line)
        stored = memoryview(line)[1:] if line[:1] == b"." else line
        buf = self._buf
        assert buf is not None
        short = buf.tell() + len(stored) - data.FREE_BYTES - self._held
        if short > 0:
            more = -(-short // data.CHUNK) * data.CHUNK
            if not self.budget.take(self.client, more):
                self._fail("over-budget")
                return False
            self._held += more
        buf.write(stored)
        return True


@dataclass(frozen=True)
class Case:
    """One DATA phase: the bytes the client sends, in which pieces, and the limits."""

    wire: bytes
    pieces: tuple[int, ...]  # sizes of the transport reads (the last one takes the rest)
    yields: tuple[int, ...]  # turns of the event loop after each piece
    max_line: int
    max_size: int
    budget: int  # DataBudget total
    others_hold: int  # what other messages of the same client already hold
    eof: bool = True
    reader_limit: int = 0  # the stream reader's limit for the bulk reader (0: max_line + 3)


@dataclass
class Outcome:
    """What a reader did with a case, as far as anyone can notice."""

    error: str
    problem: str
    content: bytes | None
    size: int | None
    smuggled: bool | None
    held: int
    held_after: int
    left: bytes | None


@contextlib.contextmanager
def small_budget_chunks() -> Iterator[None]:
    """Budget allowances and chunks of a few bytes, so short messages exercise them."""
    with mock.patch.object(data, "FREE_BYTES", 24), mock.patch.object(data, "CHUNK", 16):
        yield


def run(cls: type[data.Incoming], case: Case, limit: int = 0) -> Outcome:
    """Read case.wire with cls (the pieces fed as a transport would) and say what happened."""

    async def go() -> Outcome:
        reader = asyncio.StreamReader(limit=limit or case.max_line + 3)
        budget = data.DataBudget(case.budget, case.max_size)
        budget.take(CLIENT, case.others_hold)
        flags: list[bool] = []
        incoming = cls(
            budget,
            CLIENT,
            case.max_size,
            case.max_line,
            lambda lines: flags.append(dot_line_with_bare_end(lines)),
        )

        async def feed() -> None:
            at = 0
            for i, size in enumerate((*case.pieces, len(case.wire))):
                if at >= len(case.wire):
                    break
                reader.feed_data(case.wire[at : at + size])
                at += size
                for _ in range(case.yields[i % len(case.yields)] if case.yields else 1):
                    await asyncio.sleep(0)
            if case.eof:
                reader.feed_eof()

        feeder = asyncio.ensure_future(feed())
        error = ""
        try:
            await asyncio.wait_for(incoming.read(reader), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            error = type(exc).__name__
        await feeder
        problem = incoming.problem
        clean = not error and not problem
        held = budget.held
        content = incoming.content() if clean else None
        incoming.release()
        reader.feed_eof()  # what is left now: the next commands, for aiosmtpd's loop
        left = None if error or problem == "over-budget" else await reader.read()
        return Outcome(
            error=error,
            problem=problem if not error else "",
            content=content,
            size=incoming._size if clean else None,
            smuggled=any(flags) if not error and problem != "over-budget" else None,
            held=held if not error and problem != "over-budget" else 0,
            held_after=budget.held,
            left=left,
        )

    with small_budget_chunks():
        return asyncio.run(go())


def agree(case: Case) -> Outcome:
    """Both readers' outcome (asserting they are the same), the bulk reader's stream reader with
    the oracle's limit and with case.reader_limit (its limit in the gateway is not max_line's).

    One difference is the specification: the bulk reader holds the line still being received
    within the budget, the oracle (whose stream reader held it) did not; a line that would end
    over a limit, or never end (the client leaves), may find the budget short first: over-budget
    (421) instead of its 552 or the lost connection.
    """
    old = run(LineByLine, case)
    for limit in dict.fromkeys((0, case.reader_limit)):
        new = run(data.Incoming, case, limit)
        if new.problem == "over-budget" and (
            old.problem in ("too-big", "line-too-long") or old.error == "IncompleteReadError"
        ):
            assert new.held_after == old.held_after, case  # it gave back what it drew
            continue
        assert new == old, (case, limit)
    return new


# Pieces of DATA that matter to a reader: line ends whole and bare, dots where a line starts and
# elsewhere, the final dot whole and in parts, and lines around every length limit.
TOKENS = [
    b"\r\n",
    b"\r",
    b"\n",
    b".",
    b"..",
    b"..x",
    b"x",
    b"text",
    b"\r\n.\r\n",
    b"\r\n.",
    b".\r\n",
    b".\r",
    b".\n",
    b"\r\n..\r\n",
    b"\r\n.\r",
    b"\r\r\n",
]
token = st.one_of(
    st.sampled_from(TOKENS),
    st.binary(max_size=6),
    st.integers(1, 90).map(lambda n: b"y" * n),
)
AFTER = [b"", b"QUIT\r\n", b"MAIL FROM:<a@example.org>\r\n", b".\r\n", b"\r\n.\r\nRSET\r\n"]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    body = b"".join(draw(st.lists(token, max_size=40)))
    ended = draw(st.integers(0, 9)) > 0  # mostly with a final dot, sometimes cut off
    wire = body + (END + draw(st.sampled_from(AFTER)) if ended else b"")
    whole = draw(st.integers(0, 3)) == 0
    pieces = () if whole else tuple(draw(st.lists(st.integers(1, 24), min_size=1, max_size=30)))
    return Case(
        wire=wire,
        pieces=pieces,
        yields=tuple(draw(st.lists(st.integers(0, 3), max_size=5))),
        max_line=draw(st.integers(2, 40)),
        max_size=draw(st.integers(0, 400)),
        budget=draw(st.integers(0, 200)),
        others_hold=draw(st.sampled_from([0, 0, 16, 32, 48])),
        eof=not ended or draw(st.booleans()),
        reader_limit=draw(st.sampled_from([0, 5, 8, 17])),
    )


@pytest.mark.long(27)
@settings(max_examples=1500, deadline=None)
@given(cases())
@example(Case(b".\r\nQUIT\r\n", (), (), 10, 100, 100, 0, False))  # the first line is the final dot
@example(Case(b"\r\n.\r\nQUIT\r\n", (1,), (1,), 10, 100, 100, 0, False))
@example(Case(b"a.\r\n.\r\nQUIT\r\n", (2, 1, 1, 1), (1,), 10, 100, 100, 0, False))
@example(Case(b"x" * 30 + b"\r\n.\r\n", (29, 1, 1), (1,), 10, 100, 100, 0))  # past the limit
def test_the_bulk_reader_does_what_the_line_reader_did(case: Case) -> None:
    agree(case)


POSTS = [
    b"Subject: x\r\n\r\nbody.\r\n..stuffed\r\n",
    b"Subject: x\r\n\r\n\r\n",
    b"\r\n",
    b"..\r\n",
    b"a.\r\n.x\r\n.\n\r\n",  # a '.' line ended by a bare LF: smuggled
    b"a\r\n.\r.\r\n",
    b"",
]


def test_the_final_dot_split_at_every_place() -> None:
    for post in POSTS:
        wire = post + (END if post else END[2:]) + b"NOOP\r\n"
        for cut in range(len(wire) + 1):
            for max_line in (3, 20):
                case = Case(wire, (cut,) if cut else (), (1,), max_line, 1000, 1000, 0, False)
                out = agree(case)
                assert out.left == b"NOOP\r\n" and out.error == "", case


def test_one_byte_at_a_time_and_in_random_pieces() -> None:
    rng = random.Random(16)
    body = b"".join(
        rng.choice([b"line of text.\r\n", b"..dot\r\n", b"\r\n", b"x" * 30 + b"\r\n", b".\r\r\n"])
        for _ in range(60)
    )
    wire = body + END + b"QUIT\r\n"
    for pieces in [(1,) * len(wire), tuple(rng.randint(1, 40) for _ in range(200))]:
        for max_line in (25, 40):
            out = agree(Case(wire, pieces, (1, 0, 2), max_line, 5000, 100_000, 0, False))
            assert out.left == b"QUIT\r\n"


def test_a_line_at_the_length_limits_in_every_two_pieces() -> None:
    # A line of max_line + 2 .. + 5 bytes before its CRLF, crossing the size limit or not: the
    # problem depends on whether it is longer than the reader's limit, wherever the pieces end
    # (a piece may end between its CR and its LF).
    max_line = 6
    for extra in range(2, 6):
        wire = b"ab\r\n" + b"y" * (max_line + extra) + b"\r\nz\r\n" + END + b"NOOP\r\n"
        for max_size in (6, 1000):
            for first in range(1, 20):
                for second in range(1, 14):
                    case = Case(wire, (first, second), (1,), max_line, max_size, 1000, 0, False)
                    assert agree(case).problem in ("too-big", "line-too-long")
