"""Checks on a message's shape the gateway answers at DATA: smuggling, header size and folding, long
lines, MIME depth."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain

from listgate.mail import fields
from listgate.mail.bodies import mime_headers
from listgate.mail.names import CONTENT_TYPE
from listgate.mail.split import BARE_CR, header_block

# A "." alone between line breaks where at least one break is not CRLF: the 2023 SMTP
# smuggling class. aiosmtpd only ends DATA on CRLF.CRLF, but a relay after us might not.
# A '.' line after the first: the dot searched for (a literal first is fast), then a line break
# before and after it checked by the search too: a line of prose ending with a dot is no match.
_DOT_LINE = re.compile(rb"\.(?<=[\r\n]\.)(?=[\r\n])")
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n|$)")
_DOT_CR = re.compile(rb"\r\n\.\r(?!\n)")  # a line '.' CR, not the final dot's '.' CRLF

SMUGGLING = (
    "smuggling",
    "554 5.5.2 Refused: a bare CR or LF next to a '.' line (SMTP smuggling); use CRLF line ends",
)
# No header field at all: nothing, blank lines, or text from the first line (RFC 5322 wants at
# least From and Date). The first for an empty or blank DATA, the second for the others.
EMPTY = "no-header", "554 5.6.0 Refused: an empty message (no header fields)"
NO_HEADER = (
    "no-header",
    "554 5.6.0 Refused: no header fields; a message starts with fields such as From: and Date:",
)


def dot_line_with_bare_end(lines: bytes) -> bool:
    """Whole DATA lines as received (CRLF-ended, before dot-unstuffing, the final dot not among
    them): is one a '.' then a bare CR or LF, which dot-unstuffing would hide from smuggling()?"""
    if lines[:1] == b"." and lines[1:2] in (b"\r", b"\n") and lines[:3] != b".\r\n":
        return True  # the first line
    return b"\r\n.\n" in lines or (b"\r\n.\r" in lines and _DOT_CR.search(lines) is not None)


def smuggling(raw: bytes) -> bool:
    """True when a '.' line is framed by a bare CR or LF (an SMTP smuggling attempt)."""
    first = [0] if raw[:1] == b"." and raw[1:2] in (b"\r", b"\n") else []
    for i in chain(first, (m.start() for m in _DOT_LINE.finditer(raw))):
        # A dot-stuffed "..\r\n" line legitimately arrives as CRLF "." CRLF.
        before_ok = i == 0 or raw[i - 2 : i] == b"\r\n"
        if not (before_ok and raw[i + 1 : i + 3] == b"\r\n"):
            return True
    return False


@dataclass(frozen=True)
class HeaderShape:
    """What the limits look at in a header block."""

    fields: int  # header fields (not continuations, a "From " envelope line, a nameless ":")
    folded: int  # the most continuation lines of one field
    folded_name: str  # that field's name


def header_shape(head: bytes) -> HeaderShape:
    """Count the fields of a header block (see header_block) and their folding, in one linear
    pass."""
    count = most = run = 0
    name = current = b""
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            run += 1
            if run > most:
                most, name = run, current
        elif _starts_field(line):
            count, run, current = count + 1, 0, line.split(b":", 1)[0]
    return HeaderShape(count, most, name.decode("ascii", "replace").strip()[:40])


def _starts_field(line: bytes) -> bool:
    """Whether a line of a header block starts a field (header_shape counts it)."""
    return line[:1] not in (b"", b"\r", b":", b" ", b"\t") and not line.startswith(b"From ")


# The header lines that are no field (a "From " envelope line, a name-less ":" line, a
# continuation: split's header lines but fields), then a field's "Name:": the first field.
_FIRST_FIELD = re.compile(rb"(?:(?:From |:|[ \t]|\r(?!\n))[^\n]*(?:\n|\Z))*[\x21-\x39\x3b-\x7e]+:")


def headerless(raw: bytes) -> bool:
    """True for a message without a single header field: empty, blank, or text from its first
    line (what the gateway refuses as EMPTY or NO_HEADER). Stops at the first field: the parse
    that follows reads the block through (a linux-man header block is 3.6 KB)."""
    return _blank(raw) or _FIRST_FIELD.match(raw) is None


def _blank(raw: bytes) -> bool:
    return not raw or raw.isspace()  # isspace stops at the first other byte


def line_over(raw: bytes, limit: int) -> int:
    """The length of the first line longer than limit bytes, or 0; scans without copying lines.

    A window of limit + 1 bytes holding a line break holds no long line before its last break:
    the scan jumps from window to window (a few C calls per message), and only a stretch with no
    line break in a whole window is looked at closely (it may hold bare CRs).
    """
    pos, size = 0, len(raw)
    while size - pos > limit:
        nl = raw.rfind(b"\n", pos, pos + limit + 1)
        if nl >= 0:
            pos = nl + 1
            continue
        nl = raw.find(b"\n", pos)
        end = size if nl < 0 else nl
        for line in raw[pos:end].split(b"\r"):
            if len(line) > limit:
                return len(line)
        pos = end + 1
    return 0


def mime_depth(raw: bytes) -> int:
    """How deeply multiparts and attached messages nest (1 for a plain message)."""
    stack: list[bytes | None] = []  # open boundaries; None marks an attached message/rfc822
    deepest = 0
    pos: int | None = 0  # where a header block starts
    while pos is not None:
        header = fields.read(raw, pos)
        entity = mime_headers(((CONTENT_TYPE, header.first(CONTENT_TYPE)),))
        if entity.get_content_maintype() == "multipart" and (boundary := entity.get_boundary()):
            stack.append(boundary.encode("ascii", "surrogateescape"))
        elif entity.get_content_type() in ("message/rfc822", "message/global"):
            stack.append(None)
            deepest = max(deepest, len(stack))
            pos = header.body  # the attached message's header block follows at once
            continue
        deepest = max(deepest, len(stack))
        pos = _next_part(raw, header.body, stack)
    return deepest + 1


def _next_part(raw: bytes, start: int, stack: list[bytes | None]) -> int | None:
    """Where the header block of the next part opened by a boundary line starts (closed ones
    popped), or None."""
    for m in _LINE.finditer(raw, start):
        if m.start() == len(raw):
            return None
        line = m.group(1)
        if line.startswith(b"--") and _boundary_line(stack, line.rstrip()):
            return m.end()
    return None


def _boundary_line(stack: list[bytes | None], line: bytes) -> bool:
    """Close or open parts on a boundary line; True when part headers follow."""
    for i in range(len(stack) - 1, -1, -1):
        b = stack[i]
        if b is None:
            continue
        if line == b"--" + b + b"--":
            del stack[i:]
            return False
        if line == b"--" + b:
            del stack[i + 1 :]
            return True
    return False


def declarations(raw: bytes) -> int:
    """How many times multipart/ or message/ (any case) occurs: an upper bound of the MIME depth."""
    lower = raw.lower()
    return lower.count(b"multipart/") + lower.count(b"message/")


def shape_problem(
    raw: bytes,
    max_headers: int,
    max_line: int,
    max_depth: int,
    *,
    max_header_bytes: int = 256 * 1024,
    max_folded: int = 1000,
) -> tuple[str, str] | None:
    """(reason label, 5xx reply) when the message breaks a limit or has no header field, else
    None."""
    if smuggling(raw):
        return SMUGGLING
    if _blank(raw):
        return EMPTY
    problem = header_problem(header_block(raw), max_headers, max_header_bytes, max_folded)
    if problem is not None:
        return problem
    longest = line_over(raw, max_line)  # after the header checks: they name a clearer reason
    if longest:
        return (
            "line-too-long",
            f"552 5.3.4 Refused: a line of {longest} bytes, the limit is {max_line}",
        )
    # Each level needs a multipart/ or message/ declaration: skip the line scan when too few exist.
    if declarations(raw) < max_depth:
        return None
    depth = mime_depth(raw)
    if depth > max_depth:
        return (
            "mime-too-deep",
            f"554 5.6.0 Refused: MIME parts nested {depth} deep, the limit is {max_depth}",
        )
    return None


def header_problem(
    head: bytes, max_headers: int, max_bytes: int, max_folded: int
) -> tuple[str, str] | None:
    """(reason label, 5xx reply) when a header block breaks a limit or holds no field, else None.

    A bare CR is refused because parsers disagree on it: the standard library ends a line at
    a bare CR, our reader does not, so what one reads as a header the other reads as body
    (a Message-ID lost, a field hidden from a check).
    """
    if len(head) > max_bytes:
        return (
            "header-too-big",
            f"552 5.3.4 Refused: a header block of {len(head)} bytes, the limit is {max_bytes}",
        )
    if BARE_CR.search(head):
        return "bare-cr", "554 5.6.0 Refused: a bare CR in the header block; use CRLF line ends"
    shape = header_shape(head)
    if not shape.fields:
        return NO_HEADER
    if shape.fields > max_headers:
        return (
            "too-many-headers",
            f"552 5.3.4 Refused: {shape.fields} header fields, the limit is {max_headers}",
        )
    if shape.folded > max_folded:
        return "header-folded", (
            f"554 5.6.0 Refused: the {shape.folded_name} field is folded over {shape.folded} "
            f"lines, the limit is {max_folded}"
        )
    return None
