"""The body decoder for big mail (parse() uses it above LARGE_MESSAGE): straight from the bytes.

mail-parser, and the standard library's feed parser, hold the whole message several times over
as lines and strings (about 8-10x a 20 MB post). Here MIME parts are found by their delimiter
lines in the original bytes, each part's header block is read by the header reader, and each
body is decoded from a memoryview: the only big allocations are the decoded results themselves.

What a reader sees is what mail-parser shows of the same mail (tests/unit/listgate/
test_mail_decoders_agree.py holds both to it), by these rules:
- a part named by the mail (filename or name, RFC 2047 decoded) is an attachment; an unnamed one
  (or one whose name leaves nothing once made safe: `filename=""`) is an attachment when it has a
  Content-ID (named by it, unless it is text), is RTF, is marked attachment, or is any other file
  but text, a message or a multipart (an image sent inline without a name): named by
  filenames.unnamed; a named text part marked inline is body text too;
- an attached message (any message/* but a delivery report, or a multipart, marked attachment)
  is kept as a file of the bytes that were sent, and its text still counts as body text, as an
  inline message's does; the parts inside an attached one are never body text by their own
  "inline";
- any other part that is not text/plain or text/html (delivery and disposition reports, header
  dumps, calendar text sent inline and unnamed) is not shown: mail-parser keeps no file of it;
  but a mail that is nothing but such text shows it as its plain text;
- a multipart whose boundary is never found is read as text; one with only its closing delimiter
  is empty; one that reuses its parent's boundary holds the delimiters up to its own closing one
  (mime.decode hands such mail to this decoder).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from email.message import Message as StdMessage

from listgate.mail import fields
from listgate.mail.bodies import (
    decode_base64,
    decode_text,
    decode_uu,
    header_defects,
    mime_headers,
    shaping_fields,
)
from listgate.mail.fields import Header
from listgate.mail.filenames import given_name, is_unnamed_attachment, safe_filename, unnamed
from listgate.mail.message import Bodies, ParsedAttachment
from listgate.mail.names import CONTENT_TRANSFER_ENCODING

MAX_PARTS = 1000  # parts per multipart taken; the gateway's shape check bounds nesting before this
MAX_DEPTH = 50
# Bytes of a part's start searched for its parent's boundary, named again in its header (or its
# attached message's): never the whole of a big attachment's body.
_HEADER_WINDOW = 64 * 1024
_BODY_TYPES = ("text/plain", "text/html")
_UUENCODE = ("x-uuencode", "uuencode", "uue", "x-uue")  # the standard library's names


@dataclass
class _Sink:
    """What the walk found: texts, htmls, attachments, and the unnamed attachments met (counted
    to name them as mime.decode does)."""

    raw: bytes
    defects: list[str]
    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    unnamed: int = 0


def decode(raw: bytes, header: Header, defects: list[str]) -> Bodies:
    """(plain text, html, attachments) of raw, whose top-level header block is header."""
    sink = _Sink(raw, defects)
    head = mime_headers(shaping_fields(header))
    header_defects(header, head.get_content_type(), defects)
    try:
        _entity(sink, header.body, len(raw), head, 0, False)
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - never raise on malformed mail
        defects.append(f"ParseError: {type(exc).__name__}: {exc}"[:300])
    return (
        "\n".join(t for t in sink.text if t),
        "\n".join(t for t in sink.html if t),
        tuple(sink.attachments),
    )


def _entity(sink: _Sink, body: int, end: int, head: StdMessage, depth: int, inside: bool) -> None:
    """Add the body raw[body:end] (its entity's headers head) to sink: a multipart's parts, an
    attached message, or one leaf; inside: within an attached container."""
    raw = sink.raw
    boundary = (
        head.get_boundary()
        if head.get_content_maintype() == "multipart" and depth < MAX_DEPTH
        else None
    )
    digest = head.get_content_subtype() == "digest"
    parts = _split_parts(raw, body, end, _bytes(boundary), digest) if boundary else None
    inner = _inner_message(sink, body, end, head, depth) if parts is None else None
    report = head.get_content_type() == "message/delivery-status"  # a container of field blocks
    if parts is None and inner is None and not report:
        _add_leaf(sink, head, _decoded(sink, head, body, end), inside, depth == 0)
        return
    if head.get_content_disposition() == "attachment":
        _add_attachment(sink, head, _decoded(sink, head, body, end))
    inside = inside or _blocks_inline(head)
    if inner is not None:
        _entity(sink, inner.body, end, mime_headers(inner.fields), depth + 1, inside)
    for s, e in (parts or [])[:MAX_PARTS]:
        part = fields.read(raw, s, e)
        part_head = mime_headers(part.fields)
        if digest:  # its parts are messages unless they say
            part_head.set_default_type("message/rfc822")
        _entity(sink, part.body, e, part_head, depth + 1, inside)


def _inner_message(sink: _Sink, body: int, end: int, head: StdMessage, depth: int) -> Header | None:
    """The header block of the message head's body is, if it is one (message/*, but a delivery
    report: the standard library's reading); its fields are given to head, to name it by."""
    if _inner_type(head) is None or depth >= MAX_DEPTH or body >= end:
        return None
    inner = fields.read(sink.raw, body, end)
    head.set_payload([mime_headers(inner.fields)])  # filenames.unnamed reads its Subject
    return inner


def _inner_type(head: StdMessage) -> str | None:
    """head's type if its body is a message (message/*, but a delivery report), else None."""
    ctype = head.get_content_type()
    return ctype if ctype.startswith("message/") and ctype != "message/delivery-status" else None


def _blocks_inline(head: StdMessage) -> bool:
    """A container whose parts are not shown as body by their own "inline" (RFC 2183 2.9)."""
    disposition = head.get_content_disposition()
    return disposition not in (None, "inline") or (
        disposition != "inline" and given_name(head) is not None  # "..": no name (mailcorners)
    )


def _bytes(boundary: str) -> bytes:
    try:
        return boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return boundary.encode("utf-8", "replace")


def _split_parts(
    raw: bytes, start: int, end: int, boundary: bytes, digest: bool = False
) -> list[tuple[int, int]] | None:
    """(start, end) of each part of a multipart body raw[start:end] (of a multipart/digest: its
    parts are messages by default); None when no delimiter is found."""
    return _scan(raw, start, end, boundary, 0, digest)[0]


def _scan(
    raw: bytes, start: int, end: int, boundary: bytes, depth: int, digest: bool
) -> tuple[list[tuple[int, int]] | None, int]:
    """(the parts of a multipart body raw[start:end] or None, where its closing delimiter line
    ends, or end); a part that is a multipart reusing boundary keeps its own delimiters."""
    delim = b"--" + boundary
    parts: list[tuple[int, int]] | None = None
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
        parts = parts or []
        if part_start >= 0:
            parts.append(
                (part_start, j - 2 if raw[j - 2 : j] == b"\r\n" else max(j - 1, part_start))
            )
        if closing:
            return parts, raw.find(b"\n", k, end) + 1 or end
        part_start = raw.find(b"\n", k, end) + 1 or end
        pos = _past_reuse(raw, part_start, end, boundary, depth, digest)
    if parts is not None and part_start >= 0:  # never closed: its last line end is not its own
        last = end - 2 if raw[end - 2 : end] == b"\r\n" else end - (raw[end - 1 : end] == b"\n")
        parts.append((part_start, max(last, part_start)))
    return parts, end


def _past_reuse(raw: bytes, start: int, end: int, boundary: bytes, depth: int, digest: bool) -> int:
    """Where to look for the next delimiter after a part starting at start: past the closing
    delimiter of a multipart (or attached message's) that reuses boundary, else start.

    Not MIME (RFC 2046 5.1.1), but sent: the part is read as its sender meant, holding the
    delimiters up to its own closing one (as the gateway's depth check reads them), not as the
    parts of its parent ended by that closing delimiter (what followed it was lost)."""
    if depth >= MAX_DEPTH or raw.find(boundary, start, min(end, start + _HEADER_WINDOW)) < 0:
        return start  # the boundary is not named in the part's header: the usual case, cheap
    pos = start
    for _ in range(MAX_DEPTH - depth):
        header = fields.read(raw, pos, end)
        head = mime_headers(header.fields)
        if digest and pos == start:
            head.set_default_type("message/rfc822")
        if head.get_content_maintype() == "multipart":
            own = head.get_boundary()
            same = own is not None and _bytes(own) == boundary
            nested = head.get_content_subtype() == "digest"
            return _scan(raw, header.body, end, boundary, depth + 1, nested)[1] if same else start
        if _inner_type(head) is None or header.body >= end:
            return start
        pos = header.body
    return start


def _decoded(sink: _Sink, head: StdMessage, body: int, end: int) -> bytes | memoryview:
    """raw[body:end] undone of head's Content-Transfer-Encoding (base64, quoted-printable, else
    as is, uncopied)."""
    data = memoryview(sink.raw)[body:end]
    cte = str(head.get(CONTENT_TRANSFER_ENCODING) or "").strip().lower()
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    undo = decode_base64 if cte == "base64" else decode_uu if cte in _UUENCODE else None
    if undo is None:
        return data
    decoded, problem = undo(data)
    if problem:
        sink.defects.append(f"TransferEncodingDefect: {cte}: {problem}"[:300])
    return decoded


def _add_leaf(
    sink: _Sink, part: StdMessage, data: bytes | memoryview, inside: bool, root: bool
) -> None:
    """A leaf is body text (text/plain, text/html), an attachment, both, or nothing (see the
    module's docstring)."""
    ctype = part.get_content_type()
    if ctype.startswith("multipart/"):  # its boundary is lost: keep what it says as text
        ctype = "text/plain"
    attached = _add_attachment(sink, part, data, ctype)
    if root and not attached and ctype.startswith("text/") and ctype not in _BODY_TYPES:
        ctype = "text/plain"  # a mail that is only other text (text/calendar): its text is shown
    inline_body = not inside and part.get_content_disposition() == "inline"
    if ctype in _BODY_TYPES and (not attached or inline_body):
        decoded, _ = decode_text(data, part.get_content_charset())
        (sink.text if ctype == "text/plain" else sink.html).append(decoded.replace("\x00", ""))


def _add_attachment(
    sink: _Sink, part: StdMessage, data: bytes | memoryview, ctype: str = ""
) -> bool:
    """Keep part as an attachment if the mail names it or marks it as one; whether it was
    kept."""
    ctype = ctype or part.get_content_type()
    filename = given_name(part)
    unnamed_file = is_unnamed_attachment(part, filename)
    if unnamed_file:
        sink.unnamed += 1  # counted as mime.decode counts them
    cid = str(part.get("Content-ID") or "")
    if filename is None and cid and part.get_content_subtype() not in ("html", "plain"):
        filename = cid
    elif filename is None and unnamed_file:
        filename = unnamed(part, sink.unnamed)
    if filename is None:
        return False
    sink.attachments.append(
        ParsedAttachment(safe_filename(filename), content_type=ctype[:255], data=bytes(data))
    )
    return True
