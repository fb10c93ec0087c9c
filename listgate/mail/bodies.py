"""The body decoder interface, and what both decoders share: MIME headers from read fields, text
decoding."""

from __future__ import annotations

import binascii
from email.message import Message as StdMessage
from typing import Protocol

from listgate.mail.fields import Header
from listgate.mail.message import Bodies
from listgate.mail.names import BODY_HEADERS

_SHAPING = frozenset(n.lower() for n in BODY_HEADERS)


class BodyDecoder(Protocol):
    """Decodes the bodies of raw (its header block already read); adds what is malformed to defects,
    never raises."""

    def __call__(self, raw: bytes, header: Header, defects: list[str]) -> Bodies: ...


def mime_headers(fields: tuple[tuple[str, str], ...]) -> StdMessage:
    """A standard library Message holding these fields (no body): its MIME accessors (boundary,
    charset) read them."""
    msg = StdMessage()
    for name, value in fields:
        msg.set_raw(name, value)
    return msg


def shaping_fields(header: Header) -> tuple[tuple[str, str], ...]:
    """The fields that shape the body (Content-Type and its kin): all a decoder is given."""
    return tuple((n, v) for n, v in header.fields if n.lower() in _SHAPING)


def header_defects(header: Header, content_type: str, defects: list[str]) -> None:
    """Add the reader's defects, named for the message's content type as mail-parser names a
    part's."""
    defects.extend(f"{content_type}: {d}"[:300] for d in header.defects)


def decode_text(data: bytes | memoryview, charset: str | None) -> tuple[str, str]:
    """(text, charset used): the declared charset if it fits, else UTF-8, else cp1252/Latin-1."""
    for cs in (charset, "utf-8", "cp1252"):
        if not cs:
            continue
        try:
            return str(data, cs), cs  # str(), unlike .decode(), also takes a memoryview
        except (
            LookupError,
            UnicodeDecodeError,
            ValueError,
            TypeError,
        ):  # ValueError: a NUL in the charset name
            continue
    return str(data, "latin-1"), "latin-1"


def decode_base64(data: bytes | memoryview) -> tuple[bytes | memoryview, str]:
    """(bytes, problem or ''): base64 decoded, characters outside its alphabet skipped and a
    missing padding added; the bytes as sent when even that fails (a reader still gets the file)."""
    try:
        return binascii.a2b_base64(data), ""
    except (binascii.Error, ValueError) as exc:
        try:
            return binascii.a2b_base64(bytes(data) + b"=="), f"padding added ({exc})"
        except (binascii.Error, ValueError) as again:
            return data, f"kept as sent ({again})"


def decode_uu(data: bytes | memoryview) -> tuple[bytes | memoryview, str]:
    """(bytes, problem or ''): a uuencoded body decoded as the standard library decodes it; the
    bytes as sent when it has no begin line or a blank line before its end."""
    lines = iter(bytes(data).splitlines())
    if not any(line.startswith(b"begin ") for line in lines):
        return data, "no begin line, kept as sent"
    out = []
    for line in lines:
        if line.strip(b" \t\r\n\f") == b"end":
            break
        if not line:
            return data, "a blank line before its end, kept as sent"
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:  # some encoders pad lines: take what the length byte says
            out.append(binascii.a2b_uu(line[: (((line[0] - 32) & 63) * 4 + 5) // 3]))
    return b"".join(out), ""
