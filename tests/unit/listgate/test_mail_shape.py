"""The shape checks the gateway answers at DATA (smuggling,
header size and folding, line length, MIME depth).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listgate.mail.shape import (
    declarations,
    dot_line_with_bare_end,
    header_shape,
    headerless,
    line_over,
    mime_depth,
    shape_problem,
    smuggling,
)
from listgate.mail.split import header_block


def _refused(problem: tuple[str, str] | None) -> tuple[str, str]:
    """shape_problem's (reason, reply) when it refuses (an AssertionError when it does not)."""
    assert problem is not None, "not refused"
    return problem


@pytest.mark.parametrize(
    "raw,expected",
    [
        (b"a\r\n.\r\nb", False),  # a dot-stuffed "..", unstuffed
        (b".\r\nstart", False),
        (b"a\n.\nb", True),
        (b"a\r\n.\nb", True),
        (b"a\n.\r\nb", True),
        (b"a\r.\rb", True),
        (b"a\r\n.. x\r\n", False),
        (b"no dots at all\n", False),
    ],
)
def test_smuggling_patterns(raw: bytes, expected: bool) -> None:
    assert smuggling(raw) is expected


def test_header_count_ignores_folded_lines_and_the_body() -> None:
    shape = header_shape(
        header_block(b"A: 1\r\nB: 2\r\n  folded\r\n\tagain\r\n\r\nC: not a header\r\n")
    )
    assert (shape.fields, shape.folded, shape.folded_name) == (2, 2, "B")
    assert header_shape(header_block(b"\r\nbody only")).fields == 0


def _nested(depth: int, boundary: bytes = b"B") -> bytes:
    out = b"Subject: x\r\n"
    for i in range(depth - 1):
        out += b'Content-Type: multipart/mixed; boundary="%s%d"\r\n\r\n--%s%d\r\n' % (
            boundary,
            i,
            boundary,
            i,
        )
    out += b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for i in reversed(range(depth - 1)):
        out += b"--%s%d--\r\n" % (boundary, i)
    return out


def test_mime_depth_counts_nesting_not_siblings() -> None:
    assert mime_depth(b"Subject: x\r\n\r\nplain") == 1
    assert mime_depth(_nested(5)) == 5
    assert mime_depth(_nested(5, b"CaseSensitive")) == 5
    siblings = (
        b'Content-Type: multipart/mixed; boundary="s"\r\n\r\n'
        + b"--s\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100
        + b"--s--\r\n"
    )
    assert mime_depth(siblings) == 2
    attached = (
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\n'
        b"Content-Type: message/rfc822\r\n\r\n"
        b'Subject: inner\r\nContent-Type: multipart/mixed; boundary="i"\r\n\r\n--i\r\n\r\n'
        b"x\r\n--i--\r\n--o--\r\n"
    )
    assert mime_depth(attached) == 4


def test_shape_problem_names_the_limit() -> None:
    ok = b"A: 1\r\n\r\nbody\r\n"
    assert shape_problem(ok, 10, 1000, 5) is None
    assert shape_problem(b"".join(b"H%d: v\r\n" % i for i in range(11)) + b"\r\n", 10, 1000, 5) == (
        "too-many-headers",
        "552 5.3.4 Refused: 11 header fields, the limit is 10",
    )
    reason, reply = _refused(shape_problem(b"A: " + b"x" * 2000 + b"\r\n\r\n", 10, 1000, 5))
    assert reason == "line-too-long" and reply.startswith("552 5.3.4")
    reason, reply = _refused(shape_problem(_nested(7), 10, 1000, 5))
    assert reason == "mime-too-deep" and reply.startswith("554 5.6.0") and "nested 7 deep" in reply
    assert (
        _refused(shape_problem(b"A: 1\r\n\r\nx\n.\nMAIL FROM:<a@b>\r\n", 10, 1000, 5))[0]
        == "smuggling"
    )


@pytest.mark.parametrize(
    "raw,empty",
    [
        (b"", True),
        (b"\r\n", True),
        (b" \r\n\t\r\n\r\n", True),
        (b"\r\nFrom: a@b\r\n\r\nbody\r\n", False),  # a blank first line: what follows is body
        (b"text from the first line\r\n", False),
        (b" folded\r\n\tagain\r\n\r\nbody\r\n", False),  # a continuation of no field
        (b"From a@b Mon Nov 30 10:00:00 2026\r\n\r\nbody\r\n", False),  # an mbox envelope line
        (b": nameless\r\n\r\nbody\r\n", False),
        # the parser reads no field behind a byte-order mark either: it would be a post of nothing
        (b"\xef\xbb\xbfSubject: behind a byte-order mark\r\n\r\nbody\r\n", False),
    ],
)
def test_a_message_without_header_fields_is_refused(raw: bytes, empty: bool) -> None:
    reason, reply = _refused(shape_problem(raw, 10, 1000, 5))
    assert reason == "no-header" and reply.startswith("554 5.6.0 Refused: ")
    assert ("an empty message" in reply) == empty and "no header fields" in reply
    assert headerless(raw) and headerless(raw.replace(b"\r\n", b"\n"))  # the importer's test


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: only a subject\r\n\r\n",  # no From, no Date: kept, with what it has
        b"From: a@b\r\n",  # no blank line, no body
        b"From x\r\nSubject: after an envelope line\r\n\r\nbody\r\n",
    ],
)
def test_a_message_with_one_header_field_is_not_refused_for_it(raw: bytes) -> None:
    assert shape_problem(raw, 10, 1000, 5) is None and not headerless(raw)


def test_dot_lines_with_a_bare_end_are_spotted_before_unstuffing() -> None:
    assert dot_line_with_bare_end(b".\nMAIL FROM:<a@b>\r\n") and dot_line_with_bare_end(
        b".\rDATA\r\n"
    )
    for innocent in (b".\r\n", b"..\r\n", b"..two\r\n", b"text.\n\r\n", b"\r\n"):
        assert not dot_line_with_bare_end(innocent), innocent
    # the reader hands over runs of whole lines: a dot line anywhere in the run counts
    for run in (b"a\r\n.\nMAIL FROM:<a@b>\r\n", b"a\r\n\r\n.\rDATA\r\nb\r\n", b".\r\r\nx\r\n"):
        assert dot_line_with_bare_end(run), run
    for run in (b"a.\r\n..\r\n.b\r\n", b"a\r\n..\n\r\n", b"text.\n.\r\n"):
        assert not dot_line_with_bare_end(run), run


def _nested_2231(depth: int, spelling: bytes) -> bytes:
    """Nested multiparts whose boundary is given in
    an RFC 2231 spelling (boundary*0=, boundary*=).
    """
    out = b"Subject: x\r\n"
    for i in range(depth - 1):
        out += b"Content-Type: multipart/mixed; " + spelling % (i,) + b"\r\n\r\n--b%d\r\n" % i
    out += b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for i in reversed(range(depth - 1)):
        out += b"--b%d--\r\n" % i
    return out


@pytest.mark.parametrize(
    "spelling", [b'boundary*0="b%d"', b"boundary*=utf-8''b%d", b'boundary*0="b"; boundary*1="%d"']
)
def test_rfc2231_boundaries_count_towards_the_mime_depth(spelling: bytes) -> None:
    assert mime_depth(_nested_2231(7, spelling)) == 7
    reason, reply = _refused(shape_problem(_nested_2231(3000, spelling), 1000, 100_000, 50))
    assert reason == "mime-too-deep" and "nested 3000 deep" in reply


def test_a_header_block_over_its_byte_limit_is_refused() -> None:
    raw = b"Subject: x\r\n" + (b"X-More: " + b"q" * 900 + b"\r\n") * 300 + b"\r\nbody\r\n"
    head = raw.index(b"\r\n\r\n")
    assert shape_problem(raw, 1000, 100_000, 50, max_header_bytes=300_000) is None
    assert shape_problem(raw, 1000, 100_000, 50, max_header_bytes=256 * 1024) == (
        "header-too-big",
        f"552 5.3.4 Refused: a header block of {head} bytes, the limit is 262144",
    )


def test_a_field_folded_over_too_many_lines_is_refused() -> None:
    folded = (
        b"From: a@example.org\r\nSubject: x"
        + b"\r\n y" * 300_000
        + b"\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n"
    )
    reason, reply = _refused(
        shape_problem(folded, 1000, 100_000, 50, max_header_bytes=2 * 1024 * 1024)
    )
    assert (reason, reply) == (
        "header-folded",
        "554 5.6.0 Refused: the Subject field is folded over 300000 lines, the limit is 1000",
    )
    ok = b"To: " + b",\r\n ".join(b"p%d@example.org" % i for i in range(300)) + b"\r\n\r\nbody\r\n"
    assert shape_problem(ok, 1000, 100_000, 50) is None


@pytest.mark.parametrize("bare", [b"\r\n\r y", b"\n\r y", b"\r y"])
def test_a_bare_cr_in_the_header_block_is_refused(bare: bytes) -> None:
    raw = b"From: a@example.org\r\nSubject: x" + bare + b"\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n"
    reason, reply = _refused(shape_problem(raw, 1000, 100_000, 50))
    assert reason == "bare-cr" and reply.startswith("554 5.6.0")


def _first_long_line(raw: bytes, limit: int) -> int:
    """The specification of line_over: lines end at LF or a bare CR (a CR of CRLF ends one too)."""
    pieces = (piece for line in raw.split(b"\n") for piece in line.split(b"\r"))
    return next((len(piece) for piece in pieces if len(piece) > limit), 0)


@given(
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from([b"\r\n", b"\n", b"\r", b""]))),
    st.integers(1, 30),
)
def test_line_over_finds_the_first_line_over_the_limit(
    lines: list[tuple[int, bytes]], limit: int
) -> None:
    raw = b"".join(b"x" * length + end for length, end in lines)
    assert line_over(raw, limit) == _first_long_line(raw, limit)


def test_line_over_a_crlf_line_of_exactly_the_limit_is_not_over() -> None:
    assert line_over(b"a" * 10 + b"\r\n" + b"b" * 10 + b"\r\n", 10) == 0
    assert line_over(b"a" * 10 + b"\r\n" + b"b" * 11 + b"\r\nc", 10) == 11


@given(
    st.lists(
        st.sampled_from([b"multipart/", b"MultiPart/", b"message/", b"MESSAGE/", b"m", b"/", b"x"])
    )
)
def test_declarations_counts_what_a_case_blind_search_finds(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    assert declarations(raw) == len(re.findall(rb"(?i)multipart/|message/", raw))


def _headerless_by_every_line(raw: bytes) -> bool:
    """headerless read the long way: every line of the header block looked at."""
    starts_field = [
        line[:1] not in (b"", b"\r", b":", b" ", b"\t") and not line.startswith(b"From ")
        for line in header_block(raw).split(b"\n")
    ]
    return not raw or raw.isspace() or not any(starts_field)


_LINES = st.sampled_from(
    [
        b"From a@b Mon Nov 30 10:00:00 2026",
        b"From : x",
        b"From: a@b",
        b": nameless",
        b" folded",
        b"\tfolded",
        b"\rbare",
        b"X-A:",
        b"Subject: s",
        b"no field: here",
        b"\xef\xbb\xbfSubject: bom",
        b"",
        b" ",
        b"body",
        b"Bad Name: x",
    ]
)


@given(st.lists(_LINES, max_size=8), st.sampled_from([b"\r\n", b"\n", b"\r"]), st.booleans())
def test_headerless_stops_at_the_first_field_and_answers_as_every_line_read(
    lines: list[bytes], end: bytes, last_end: bool
) -> None:
    raw = end.join(lines) + (end if last_end else b"")
    assert headerless(raw) == _headerless_by_every_line(raw)
