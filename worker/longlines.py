"""Copies a standard relay accepts: no line longer than RFC 5322's 998 bytes.

The archive keeps a post's bytes as received; only the copies sent out change, and only where
a line is too long, so a DKIM signature survives whenever it can. A header field is folded at
its own whitespace (which relaxed canonicalisation ignores); a run without whitespace still too
long becomes RFC 2047 encoded words in a free-text field and is broken with a space in any
other. A MIME part with a long line is re-encoded: quoted-printable for text, base64 for the
rest; the other parts, the boundaries and the structure stay byte for byte. Whatever is still
too long after that (a preamble, a broken structure) is wrapped hard.
"""

from __future__ import annotations

import base64
import quopri
import re
from email.header import Header, decode_header, make_header

from listgate.mail import fields
from listgate.mail.bodies import mime_headers
from listgate.mail.fields import raw_fields
from listgate.mail.names import CONTENT_TRANSFER_ENCODING
from worker.headers import newline_of

LIMIT = 998  # bytes per line, without its CRLF (RFC 5322 2.1.1, RFC 5321 4.5.3.1.6)
FOLD = 78  # where a folded header line is cut when its whitespace allows
MAX_DEPTH = 50
_WSP_RUN = re.compile(rb"(?<![ \t])(?=[ \t])")  # before each run of spaces and tabs
_FREE_TEXT = (b"subject", b"comments", b"content-description", b"thread-topic")
_IDENTITY = ("", "7bit", "8bit", "binary")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


def too_long(data: bytes) -> bool:
    """True when some line of data is longer than LIMIT bytes."""
    return len(data) > LIMIT and any(len(line) > LIMIT for line in data.splitlines())


def fit_lines(raw: bytes) -> bytes:
    """The message with no line over LIMIT bytes; raw itself when it has none."""
    if not too_long(raw):
        return raw
    fitted = _entity(raw, newline_of(raw), 0)
    return _wrap_hard(fitted, newline_of(raw)) if too_long(fitted) else fitted


def _entity(data: bytes, newline: bytes, depth: int) -> bytes:
    """A message or MIME part with its long header lines folded and its long body re-encoded."""
    if depth > MAX_DEPTH or not too_long(data):
        return data
    header = fields.read(data)
    head, body = data[: header.body], data[header.body :]
    lines = raw_fields(data)
    blank = head[len(b"".join(lines)) :]
    info = mime_headers(header.fields)
    ctype, boundary = info.get_content_type(), info.get_boundary()
    cte = str(info.get(CONTENT_TRANSFER_ENCODING, "")).strip().lower()
    folded = [_fold(line, newline) for line in lines]
    if ctype.startswith("multipart/") and boundary:
        body = _multipart(body, boundary, newline, depth)
    elif ctype in ("message/rfc822", "message/global") and cte in _IDENTITY:
        body = _entity(body, newline, depth + 1)
    elif too_long(body):
        body, new_cte = _reencode(body, ctype, cte, newline)
        folded = [f for f in folded if _name(f) != b"content-transfer-encoding"]
        folded.append(b"Content-Transfer-Encoding: " + new_cte + newline)
        if depth == 0 and not any(_name(f) == b"mime-version" for f in folded):
            folded.append(b"MIME-Version: 1.0" + newline)
    return b"".join(folded) + blank + body


def _name(field: bytes) -> bytes:
    return field.split(b":", 1)[0].strip().lower()


def _fold(field: bytes, newline: bytes) -> bytes:
    """One header field with every physical line within LIMIT (folded at whitespace if it can)."""
    lines = field.splitlines()
    if all(len(line) <= LIMIT for line in lines):
        return field
    pieces: list[bytes] = []
    for line in lines:
        pieces.extend(_pack(_WSP_RUN.split(line)) if len(line) > LIMIT else [line])
    free_text = _name(field) in _FREE_TEXT or _name(field).startswith(b"x-")
    # A free-text value must not start on a continuation line: unfolded it would begin with a space.
    if any(len(piece) > LIMIT for piece in pieces) or (
        free_text and not pieces[0].partition(b":")[2].strip()
    ):
        if free_text:
            return _encoded_words(field, newline)
        pieces = [chunk for piece in pieces for chunk in _cut(piece)]
    return newline.join(pieces) + newline


def _pack(words: list[bytes]) -> list[bytes]:
    """Words (each after the first starting with whitespace) packed into lines of about FOLD bytes.

    The field's name keeps its first word beside it whenever the two fit in LIMIT.
    """
    words = [word for word in words if word]
    lines = [words[0]]
    for word in words[1:]:
        if (
            len(lines[-1]) + len(word) <= FOLD
            or not word.strip()  # trailing whitespace never stands alone
            or (len(lines) == 1 and lines[0].endswith(b":") and len(lines[0]) + len(word) <= LIMIT)
        ):
            lines[-1] += word
        else:
            lines.append(word)
    return lines


def _cut(piece: bytes) -> list[bytes]:
    """A run without whitespace longer than LIMIT, broken by folding whitespace.

    Unfolded, it reads with an added space.
    """
    step = LIMIT - 1
    return [piece[:step]] + [b" " + piece[i : i + step] for i in range(step, len(piece), step)]


def _encoded_words(field: bytes, newline: bytes) -> bytes:
    """A free-text field as RFC 2047 encoded words (its text unchanged for any reader)."""
    name, _, value = field.partition(b":")
    raw = b"".join(value.splitlines()).strip()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if "=?" in text:
        text = str(make_header(decode_header(text)))
    header_name = name.decode("ascii", "replace")
    encoded = Header(text, "utf-8", header_name=header_name).encode(linesep="\r\n", maxlinelen=FOLD)
    return (name + b": " + encoded.encode("ascii")).replace(b"\r\n", newline) + newline


def _multipart(body: bytes, boundary: str, newline: bytes, depth: int) -> bytes:
    """Each part fitted on its own; delimiters, preamble and epilogue kept (cut if too long)."""
    delimiter = re.compile(
        rb"^--" + re.escape(boundary.encode("utf-8", "surrogateescape")) + rb"(--)?[ \t]*\r?$",
        re.MULTILINE,
    )
    marks = list(delimiter.finditer(body))
    if not marks:
        return body
    out = [_wrap_hard(body[: marks[0].start()], newline)]
    for i, mark in enumerate(marks):
        out.append(mark.group(0))
        if mark.group(1):  # the close delimiter: what follows is the epilogue
            out.append(_wrap_hard(body[mark.end() :], newline))
            break
        out.append(
            _part(
                body[mark.end() : marks[i + 1].start() if i + 1 < len(marks) else len(body)],
                newline,
                depth,
            )
        )
    return b"".join(out)


def _part(chunk: bytes, newline: bytes, depth: int) -> bytes:
    """Between two delimiter lines: the first's end, the part, the line break before the next."""
    lead = b"\n" if chunk.startswith(b"\n") else b""
    inner = chunk[len(lead) :]
    tail = re.search(rb"\r?\n\Z", inner)
    cut = tail.start() if tail else len(inner)
    return lead + _entity(inner[:cut], newline, depth + 1) + inner[cut:]


def _reencode(body: bytes, ctype: str, cte: str, newline: bytes) -> tuple[bytes, bytes]:
    """(new body, its Content-Transfer-Encoding): the same content in lines of at most 76 bytes."""
    if cte == "base64":  # already encoded: only the line breaks change
        return _base64_lines(_NOT_BASE64.sub(b"", body), newline), b"base64"
    content = body
    if cte == "quoted-printable":
        content = quopri.decodestring(body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    if ctype.startswith("text/"):
        encoded = quopri.encodestring(content.replace(b"\r\n", b"\n"))
        return encoded.replace(b"\n", newline), b"quoted-printable"
    return _base64_lines(base64.b64encode(content), newline), b"base64"


def _base64_lines(encoded: bytes, newline: bytes) -> bytes:
    return newline.join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _wrap_hard(data: bytes, newline: bytes) -> bytes:
    """Cut long lines: the last resort for text nobody reads (a preamble) or a broken structure."""
    if not too_long(data):
        return data
    out = []
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        ending = line[len(body) :]
        out.append(newline.join(body[i : i + LIMIT] for i in range(0, len(body), LIMIT)) + ending)
    return b"".join(out)
