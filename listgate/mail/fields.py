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
_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+):[ \t]*")


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
    fields: list[tuple[str, str]] = []
    matches = [m for m in _FIELD.finditer(block) if m.end() > m.start()]
    for i, match in enumerate(matches):
        text = match.group()
        name = _NAME.match(text) if not text.startswith(b"From ") else None
        if name is not None:
            value = text[name.end() :].rstrip(b"\r\n").decode("ascii", "surrogateescape")
            fields.append((name.group(1).decode("ascii"), value))
            continue
        defects.extend(_stray(text, first=i == 0, last=i == len(matches) - 1))
    return Header(tuple(fields), end, body, tuple(defects), bare_cr)


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
