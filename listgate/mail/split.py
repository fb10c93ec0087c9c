"""Where a message's (or a MIME part's) header block ends and its body starts: the one reading of
it."""

from __future__ import annotations

import re

# A header line as the standard library's parser reads one: "Name:" (printable ASCII, no space), a
# continuation (space, tab, or a bare CR read as a space), or a "From " envelope line.
_HEADER_LINES = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t]|\r(?!\n))[^\n]*(?:\n|\Z))*")
BARE_CR = re.compile(rb"\r(?!\n)")  # a CR that ends no line


def header_end(raw: bytes, start: int = 0, stop: int | None = None) -> tuple[int, int]:
    """(end of the header block, start of the body) of raw[start:stop].

    The block is the run of header lines from start; the first other line ends it, and is skipped
    when it is blank (CRLF or LF). That is where the standard library's parser, and so parse(),
    ends it: the gateway's checks, the worker's copies and the importer read the same fields.
    A bare CR ends no line (RFC 5322); no other line at all: the whole of raw is header.
    """
    stop = len(raw) if stop is None else stop
    found = _HEADER_LINES.match(raw, start, stop)
    end = found.end() if found else start
    if raw.startswith(b"\r\n", end, stop):
        return end, end + 2
    if raw.startswith(b"\n", end, stop):
        return end, end + 1
    return end, end


def split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block with the blank line that ends it, body); the bytes untouched."""
    body = header_end(raw)[1]
    return raw[:body], raw[body:]


def header_block(raw: bytes) -> bytes:
    """The top-level header block of a message, up to the line break before the blank line that ends
    it."""
    end, body = header_end(raw)
    if (
        body > end and end
    ):  # the last field's own line break is counted with the blank line, as it always was
        end -= 2 if raw[end - 2 : end] == b"\r\n" else 1
    return raw[:end]
