"""Bodies of big messages decoded straight from the bytes (parse() uses this above LARGE_MESSAGE).

mail-parser, and the standard library's feed parser, hold the whole message several times over
as lines and strings (about 8-10x a 20 MB post). Here MIME parts are found by their delimiter
lines in the original bytes, each part's small header block is parsed on its own, and each body
is decoded from a memoryview: the only big allocations are the decoded results themselves.
"""

from __future__ import annotations

import binascii
import email
from email.message import Message as StdMessage

from listgate.parsing import ParsedAttachment, decode_text

MAX_PARTS = 1000  # parts per multipart taken; the gateway's shape check bounds nesting before this
MAX_DEPTH = 50

Sink = tuple[list[str], list[str], list[ParsedAttachment]]


def bodies(raw: bytes, head: StdMessage, defects: list[str]) -> tuple[str, str, tuple[ParsedAttachment, ...]]:
    """(plain text, html, attachments) of a message whose top-level headers are head."""
    sink: Sink = ([], [], [])
    try:
        _entity(raw, 0, len(raw), head, sink, defects, 0)
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - never raise on malformed mail
        defects.append(f"ParseError: {type(exc).__name__}: {exc}"[:300])
    text, html, attachments = sink
    return "\n".join(t for t in text if t), "\n".join(t for t in html if t), tuple(attachments)


def _entity(raw: bytes, start: int, end: int, head: StdMessage, sink: Sink, defects: list[str], depth: int) -> None:
    """Add the body of raw[start:end] (headers head) to sink: a multipart's parts, or one leaf."""
    body = body_start(raw, start, end)
    boundary = head.get_boundary() if head.get_content_maintype() == "multipart" and depth < MAX_DEPTH else None
    parts = split_parts(raw, body, end, _bytes(boundary)) if boundary else []
    if parts:
        for s, e in parts[:MAX_PARTS]:
            part_head = email.message_from_bytes(raw[s:body_start(raw, s, e)])
            _entity(raw, s, e, part_head, sink, defects, depth + 1)
        return
    if head.get_content_type() in ("message/rfc822", "message/global") and depth < MAX_DEPTH and body < end:
        inner = email.message_from_bytes(raw[body:body_start(raw, body, end)])
        _entity(raw, body, end, inner, sink, defects, depth + 1)  # an attached message: its text counts too
        return
    data = decode_transfer(memoryview(raw)[body:end], head.get("Content-Transfer-Encoding"), defects)
    add_leaf(head, data, sink)


def _bytes(boundary: str) -> bytes:
    try:
        return boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return boundary.encode("utf-8", "replace")


def body_start(raw: bytes, start: int, end: int) -> int:
    """Where the body of raw[start:end] begins: after its first blank line (CRLF or bare LF)."""
    if raw.startswith(b"\r\n", start):
        return start + 2
    if raw.startswith(b"\n", start):
        return start + 1
    found = [i + len(blank) for blank in (b"\r\n\r\n", b"\n\n") if (i := raw.find(blank, start, end)) >= 0]
    return min(found) if found else end


def split_parts(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) of each part of a multipart body raw[start:end]; [] when no delimiter is found."""
    delim = b"--" + boundary
    parts: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while (j := raw.find(delim, pos, end)) >= 0:
        pos = j + 1
        if j != start and raw[j - 1] != 10:  # a delimiter starts a line
            continue
        k = j + len(delim)
        closing = raw.startswith(b"--", k)
        if closing:
            k += 2
        while k < end and raw[k] in (32, 9):  # transport padding
            k += 1
        if not closing and k < end and raw[k] not in (13, 10):
            continue  # the boundary was only the start of a longer line
        if part_start >= 0:
            parts.append((part_start, j - 2 if raw[j - 2:j] == b"\r\n" else max(j - 1, part_start)))
        if closing:
            return parts
        part_start = raw.find(b"\n", k, end) + 1 or end
    if part_start >= 0:
        parts.append((part_start, end))
    return parts


def decode_transfer(body: memoryview, encoding: object, defects: list[str]) -> bytes | memoryview:
    """A body undone of its Content-Transfer-Encoding (base64, quoted-printable, else as is, uncopied)."""
    cte = str(encoding or "").strip().lower()
    try:
        if cte == "base64":
            return binascii.a2b_base64(body)
        if cte == "quoted-printable":
            return binascii.a2b_qp(body)
    except (binascii.Error, ValueError) as exc:
        defects.append(f"TransferEncodingDefect: {cte}: {exc}"[:300])
    return body


def add_leaf(part: StdMessage, data: bytes | memoryview, sink: Sink) -> None:
    """An inline text/plain or text/html part becomes body text, anything else an attachment."""
    text, html, attachments = sink
    ctype = part.get_content_type()
    filename = part.get_filename()
    if ctype.startswith("multipart/"):  # its boundary is lost: keep what it says as text
        ctype = "text/plain"
    if ctype in ("text/plain", "text/html") and part.get_content_disposition() != "attachment" and not filename:
        decoded, _ = decode_text(data, part.get_content_charset())
        (text if ctype == "text/plain" else html).append(decoded.replace("\x00", ""))
        return
    attachments.append(ParsedAttachment(filename=str(filename or "attachment")[:255], content_type=ctype[:255],
                                        data=bytes(data)))
