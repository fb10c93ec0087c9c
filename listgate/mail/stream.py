"""The body decoder for big mail (parse() uses it above LARGE_MESSAGE): straight from the bytes.

mail-parser, and the standard library's feed parser, hold the whole message several times over
as lines and strings (about 8-10x a 20 MB post). Here MIME parts are found by their delimiter
lines in the original bytes, each part's header block is read by the header reader, and each
body is decoded from a memoryview: the only big allocations are the decoded results themselves.
"""

from __future__ import annotations

import binascii
from email.message import Message as StdMessage

from listgate.mail import fields
from listgate.mail.bodies import decode_text, header_defects, mime_headers, shaping_fields
from listgate.mail.fields import Header
from listgate.mail.filenames import is_unnamed_attachment, safe_filename, unnamed
from listgate.mail.message import Bodies, ParsedAttachment
from listgate.mail.names import CONTENT_TRANSFER_ENCODING

MAX_PARTS = 1000  # parts per multipart taken; the gateway's shape check bounds nesting before this
MAX_DEPTH = 50

# (texts, htmls, attachments, the unnamed attachments met: counted to name them as mime.decode does)
Sink = tuple[list[str], list[str], list[ParsedAttachment], list[StdMessage]]


def decode(raw: bytes, header: Header, defects: list[str]) -> Bodies:
    """(plain text, html, attachments) of raw, whose top-level header block is header."""
    sink: Sink = ([], [], [], [])
    head = mime_headers(shaping_fields(header))
    header_defects(header, head.get_content_type(), defects)
    try:
        _entity(raw, header.body, len(raw), head, sink, defects, 0)
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - never raise on malformed mail
        defects.append(f"ParseError: {type(exc).__name__}: {exc}"[:300])
    text, html, attachments, _ = sink
    return "\n".join(t for t in text if t), "\n".join(t for t in html if t), tuple(attachments)


def _entity(
    raw: bytes, body: int, end: int, head: StdMessage, sink: Sink, defects: list[str], depth: int
) -> None:
    """Add the body raw[body:end] (its entity's headers head) to sink: a multipart's parts, or one
    leaf."""
    boundary = (
        head.get_boundary()
        if head.get_content_maintype() == "multipart" and depth < MAX_DEPTH
        else None
    )
    parts = _split_parts(raw, body, end, _bytes(boundary)) if boundary else []
    if parts:
        for s, e in parts[:MAX_PARTS]:
            part = fields.read(raw, s, e)
            _entity(raw, part.body, e, mime_headers(part.fields), sink, defects, depth + 1)
        return
    if (
        head.get_content_type() in ("message/rfc822", "message/global")
        and depth < MAX_DEPTH
        and body < end
    ):
        if is_unnamed_attachment(head):
            sink[3].append(head)  # not kept as a file here, but counted as mime.decode counts it
        inner = fields.read(raw, body, end)  # an attached message: its text counts too
        _entity(raw, inner.body, end, mime_headers(inner.fields), sink, defects, depth + 1)
        return
    data = _decode_transfer(memoryview(raw)[body:end], head.get(CONTENT_TRANSFER_ENCODING), defects)
    _add_leaf(head, data, sink)


def _bytes(boundary: str) -> bytes:
    try:
        return boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return boundary.encode("utf-8", "replace")


def _split_parts(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) of each part of a multipart body raw[start:end]; [] when no delimiter is
    found."""
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
            parts.append(
                (part_start, j - 2 if raw[j - 2 : j] == b"\r\n" else max(j - 1, part_start))
            )
        if closing:
            return parts
        part_start = raw.find(b"\n", k, end) + 1 or end
    if part_start >= 0:
        parts.append((part_start, end))
    return parts


def _decode_transfer(body: memoryview, encoding: object, defects: list[str]) -> bytes | memoryview:
    """A body undone of its Content-Transfer-Encoding (base64, quoted-printable, else as is,
    uncopied)."""
    cte = str(encoding or "").strip().lower()
    try:
        if cte == "base64":
            return binascii.a2b_base64(body)
        if cte == "quoted-printable":
            return binascii.a2b_qp(body)
    except (binascii.Error, ValueError) as exc:
        defects.append(f"TransferEncodingDefect: {cte}: {exc}"[:300])
    return body


def _add_leaf(part: StdMessage, data: bytes | memoryview, sink: Sink) -> None:
    """An inline text/plain or text/html part becomes body text, anything else an attachment."""
    text, html, attachments, unnamed_met = sink
    ctype = part.get_content_type()
    filename = part.get_filename()
    if ctype.startswith("multipart/"):  # its boundary is lost: keep what it says as text
        ctype = "text/plain"
    if (
        ctype in ("text/plain", "text/html")
        and part.get_content_disposition() != "attachment"
        and not filename
    ):
        decoded, _ = decode_text(data, part.get_content_charset())
        (text if ctype == "text/plain" else html).append(decoded.replace("\x00", ""))
        return
    if is_unnamed_attachment(part):
        unnamed_met.append(part)
        filename = unnamed(part, len(unnamed_met))
    attachments.append(
        ParsedAttachment(
            filename=safe_filename(filename or ""), content_type=ctype[:255], data=bytes(data)
        )
    )
