"""The header reader: a header block's fields, read once and linear on folded lines.

Fields are read as the standard library's compat32 parser reads them (a property test holds
the two together): the name up to the colon, the value with its leading blanks stripped and its
folding kept, 8-bit bytes as surrogates. A bare CR is read as a space. Lines that are no field
(a "From " envelope line, a name-less ":" line, a continuation with no field above it) keep
their bytes in raw_fields() and are left out of read()'s fields, each noted as the parser notes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import errors
from functools import cached_property

from listgate.mail.split import BARE_CR, header_end

# a line and its continuations
_FIELD = re.compile(rb"[^\n]*(?:\n|\Z)(?:(?:[ \t]|\r(?!\n))[^\n]*(?:\n|\Z))*")
# the same, as (name, value) when it is a field, else ("", the line): one pass over a decoded
# block, no match object per field (a linux-man header block, 28 fields: 50 µs, not 80)
_PAIR = re.compile(
    r"(?:([\x21-\x39\x3b-\x7e]+):[ \t]*)?([^\n]*(?:\n|\Z)(?:(?:[ \t]|\r(?!\n))[^\n]*(?:\n|\Z))*)"
)


def _defect(kind: type[errors.MessageDefect]) -> str:
    """A defect named as the standard library's parser (and mail-parser after it) name it."""
    return f"{kind.__name__}: {kind.__doc__}"


@dataclass(frozen=True)
class Header:
    """A header block read once: its fields in order, where it ends, where the body starts."""

    # (name, value) as received; values keep 8-bit bytes as surrogates
    fields: tuple[tuple[str, str], ...]
    end: int
    body: int
    defects: tuple[
        str, ...
    ] = ()  # what the reader found malformed, named as the standard library names it
    bare_cr: bool = False  # the block had a bare CR, read as a space

    @cached_property
    def _index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name, value in self.fields:
            index.setdefault(name.lower(), []).append(value)
        return index

    def all(self, name: str) -> list[str]:
        """Every value of the named field (any case), in order."""
        return self._index.get(name.lower(), [])

    def first(self, name: str) -> str:
        """The first value of the named field, or ''."""
        values = self._index.get(name.lower())
        return values[0] if values else ""


def raw_fields(raw: bytes, start: int = 0, stop: int | None = None) -> list[bytes]:
    """The header block's fields as bytes, each with its continuation lines and line ends (lines
    that are no field too)."""
    end = header_end(raw, start, stop)[0]
    return [m.group() for m in _FIELD.finditer(raw, start, end) if m.end() > m.start()]


def read(raw: bytes, start: int = 0, stop: int | None = None) -> Header:
    """The header block of raw[start:stop] read into fields (see the module's docstring)."""
    end, body = header_end(raw, start, stop)
    block = raw[start:end]
    bare_cr = BARE_CR.search(block) is not None
    if bare_cr:
        block = BARE_CR.sub(b" ", block)
    # a line that is no field, not blank
    ended_by_body = end == body and end < (len(raw) if stop is None else stop)
    defects = [_defect(errors.MissingHeaderBodySeparatorDefect)] if ended_by_body else []
    # every line with its continuations (the empty match at the block's end left out); a "From "
    # line has a space before any colon, so it is never read as a field
    lines = [p for p in _PAIR.findall(block.decode("ascii", "surrogateescape")) if p[0] or p[1]]
    fields = tuple((name, value.rstrip("\r\n")) for name, value in lines if name)
    if len(fields) < len(lines):
        last = len(lines) - 1
        for i, (name, text) in enumerate(lines):
            if not name:
                defects.extend(_stray(text.encode("ascii", "surrogateescape"), i == 0, i == last))
    return Header(fields, end, body, tuple(defects), bare_cr)


def _stray(text: bytes, first: bool, last: bool) -> list[str]:
    """The defects the parser notes for a line that is no field (and its continuation lines)."""
    lines = text.count(b"\n") + (not text.endswith(b"\n"))
    if text[:1] in (b" ", b"\t", b"\r"):
        return [_defect(errors.FirstHeaderLineIsContinuationDefect)] * lines
    orphans = [_defect(errors.FirstHeaderLineIsContinuationDefect)] * (lines - 1)
    if text.startswith(
        b"From "
    ):  # the envelope line first is no defect; last, the parser reads it as body
        return (
            orphans
            if first or (last and not orphans)
            else [_defect(errors.MisplacedEnvelopeHeaderDefect)] + orphans
        )
    return [_defect(errors.InvalidHeaderDefect)] + orphans  # a ":" line: a field with no name
