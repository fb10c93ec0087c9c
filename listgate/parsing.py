"""Parse raw mail into a frozen, typed result. The only module that imports mailparser."""

from __future__ import annotations

import base64
import copy
import email.header
import email.utils
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import Message as StdMessage

import mailparser
from mailparser.exceptions import MailParserError

log = logging.getLogger(__name__)

_ID_IN_BRACKETS = re.compile(r"<([^<>]*)>")
_REPLY_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{0,100}\]\s*)?(?:(?:re|aw|sv|antw|r[ée]f|ref|odp|vs|vl|tr|wg|fwd?|fw)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*(?:\[[^\]]{0,100}\]\s*)?)+",
    re.IGNORECASE,
)
_REPLY_WORD = re.compile(r"\b(?:re|aw|sv|antw|r[ée]f|odp|vs)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]", re.IGNORECASE)
_LIST_TAG = re.compile(r"^\s*\[[^\]]{0,100}\]\s*")
_SPACES = re.compile(r"\s+")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
BARE_CR = re.compile(rb"\r(?!\n)")  # a CR that ends no line
LARGE_MESSAGE = 1024 * 1024  # above this, bodies are decoded without mail-parser (its copies cost ~8x the size)


@dataclass(frozen=True)
class ParsedAttachment:
    """A decoded attachment."""

    filename: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        """Content hash: attachments are stored once per hash."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class MessageHead:
    """What a cheap scan of the header block tells (no body parsed): enough to answer at SMTP DATA."""

    message_id: str
    message_id_generated: bool
    from_addr: str
    auto_submitted: str
    precedence: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)

    def header(self, name: str) -> str:
        """The first value of a header, decoded, or ''."""
        return _first_header(self.headers, name)


def _first_header(headers: tuple[tuple[str, str], ...], name: str) -> str:
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return decode_header(_header_text_value(value))
    return ""


@dataclass(frozen=True)
class ParsedMessage:
    """What listgate needs from a message, plus the exact bytes it came in."""

    raw: bytes
    message_id: str
    message_id_generated: bool
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_name: str
    from_addr: str
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    date: datetime  # UTC
    date_offset: int  # the sender's offset from UTC, minutes
    date_header: str
    date_generated: bool
    body_text: str
    body_html: str
    is_flowed: bool
    attachments: tuple[ParsedAttachment, ...]
    auto_submitted: str
    precedence: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str:
        """The first value of a header, decoded, or ''."""
        return _first_header(self.headers, name)

    @property
    def chain(self) -> tuple[str, ...]:
        """References then In-Reply-To, oldest first, own id and repeats removed."""
        return reference_chain(self.message_id, self.references, self.in_reply_to)

    @property
    def is_reply_subject(self) -> bool:
        """The subject says it is a reply (Re:, Aw:, Sv:, [list] Re: ...)."""
        return is_reply_subject(self.subject)


def normalize_msgid(value: str) -> str:
    """A Message-ID without brackets, whitespace or comments; '' if it holds none."""
    ids = extract_msgids(value)
    return ids[0] if ids else ""


def extract_msgids(value: str) -> list[str]:
    """Every Message-ID in a header value, in order; tolerant of folding, comments and no brackets."""
    if not value:
        return []
    value = value.replace("\x00", "")
    found = [_SPACES.sub("", m) for m in _ID_IN_BRACKETS.findall(value)]
    found = [m for m in found if m and len(m) <= 900]
    if found:
        return found
    # No brackets: take bare tokens that look like addr-specs, ignoring (comments).
    bare = re.sub(r"\([^)]*\)", " ", value)
    return [t.strip("<>,;\"'") for t in bare.split() if "@" in t and len(t) <= 900]


def reference_chain(own: str, references: tuple[str, ...] | list[str], in_reply_to: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The ancestors a message names, oldest first; In-Reply-To's first id is taken as the nearest."""
    chain: list[str] = []
    for ref in list(references) + list(in_reply_to[:1]):
        if ref and ref != own:
            if ref in chain:
                chain.remove(ref)
            chain.append(ref)
    return tuple(chain[-200:])  # a bound against junk: 200 ancestors is more than any real thread


def normalize_subject(subject: str) -> str:
    """The subject without list tags and reply/forward prefixes, whitespace folded, lower case."""
    s = _REPLY_PREFIX.sub("", subject or "")
    s = _LIST_TAG.sub("", s)
    return _SPACES.sub(" ", s).strip().lower()[:255]


def is_reply_subject(subject: str) -> bool:
    """True when the subject carries a reply prefix, possibly after a list tag."""
    m = _REPLY_PREFIX.match(subject or "")
    return bool(m and _REPLY_WORD.search(m.group(0)))


def decode_header(value: str | None) -> str:
    """Decode RFC 2047 words; unknown or lying charsets fall back instead of failing."""
    if not value:
        return ""
    value = str(value)
    try:
        parts = email.header.decode_header(value)
    except Exception:  # noqa: BLE001 - a malformed encoded word must not lose the header
        return _SPACES.sub(" ", value).strip()
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        for cs in (charset, "utf-8", "latin-1"):
            if not cs:
                continue
            try:
                out.append(chunk.decode(cs))
                break
            except (LookupError, UnicodeDecodeError, ValueError):  # ValueError: a NUL in the charset name
                continue
    return _SPACES.sub(" ", "".join(out).replace("\x00", "")).strip()


def _raw_all(msg: StdMessage, name: str) -> list[str]:
    """Every value of a header as received (compat32 keeps 8-bit bytes as surrogates).

    msg.get() would wrap 8-bit values in a Header that turns them into U+FFFD.
    """
    name = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == name]


def _raw_one(msg: StdMessage, name: str) -> str:
    values = _raw_all(msg, name)
    return values[0] if values else ""


def _header_text(msg: StdMessage, name: str) -> str:
    values = _raw_all(msg, name)
    if not values:
        return ""
    return decode_header(_header_text_value(values[0]))


def _addresses(msg: StdMessage, name: str) -> list[tuple[str, str]]:
    values = [_header_text_value(v) for v in _raw_all(msg, name)]
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:  # noqa: BLE001 - a broken address list yields no addresses, not a crash
        return []
    return [(decode_header(n), a.strip().lower()) for n, a in pairs if "@" in a]


def _header_text_value(value: object) -> str:
    """8-bit header bytes (surrogates) recovered as UTF-8, else Latin-1."""
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        data = text.encode("utf-8", "surrogateescape")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text


def _parse_date(value: str, arrival: datetime) -> tuple[datetime, int, bool]:
    """(UTC date, sender offset in minutes, generated?) — absurd or missing dates become arrival."""
    try:
        parsed = email.utils.parsedate_tz(value) if value else None
    except Exception:  # noqa: BLE001
        parsed = None
    if parsed:
        try:
            offset = parsed[9] or 0
            naive = datetime(*parsed[:6])
            utc = (naive - timedelta(seconds=offset)).replace(tzinfo=timezone.utc)
            if datetime(1980, 1, 1, tzinfo=timezone.utc) <= utc <= arrival + timedelta(days=2) and abs(offset) <= 14 * 3600:
                return utc, offset // 60, False
        except (ValueError, OverflowError):
            pass
    return arrival, 0, True


def header_end(raw: bytes) -> tuple[int, int]:
    """(end of the header block, start of the body): around the first blank line, CRLF or bare LF.

    The one reading of where a message's header ends, for the gateway's limits, the worker's
    copies and the parser alike. A bare CR ends no line (RFC 5322); no blank line: all header.
    """
    if raw.startswith(b"\n"):
        return 0, 1
    if raw.startswith(b"\r\n"):
        return 0, 2
    m = _BLANK_LINE.search(raw)
    return (len(raw), len(raw)) if m is None else (m.start(), m.end())


def _readable(raw: bytes, defects: list[str]) -> bytes:
    """raw with any bare CR of its header block read as a space, as header_end reads it.

    The standard library's parser ends a line at a bare CR, so "CRLF CR" would end the header
    for it alone: the fields after it (a Message-ID) would become body.
    """
    end, _ = header_end(raw)
    if BARE_CR.search(raw, 0, end) is None:
        return raw
    defects.append("HeaderDefect: a bare CR in the header block, read as a space")
    return BARE_CR.sub(b" ", raw[:end]) + raw[end:]


def generated_msgid(raw: bytes) -> str:
    """A deterministic Message-ID for mail that has none: the same bytes give the same id."""
    return f"{hashlib.sha256(raw).hexdigest()[:40]}@generated.listgate.invalid"


def parse(raw: bytes, arrival: datetime | None = None) -> ParsedMessage:
    """Parse raw bytes; never raises on malformed mail (problems become defects)."""
    arrival = arrival or datetime.now(timezone.utc)
    defects: list[str] = []
    source = _readable(raw, defects)
    if len(source) > LARGE_MESSAGE:
        msg = email.message_from_bytes(_headers_only(source))
        from listgate import bigmail  # deferred: it imports this module

        body_text, body_html, attachments = bigmail.bodies(source, msg, defects)
    else:
        msg, (body_text, body_html, attachments) = _small_bodies(source, defects)

    head = _head(msg, raw)
    in_reply_to = tuple(extract_msgids(_header_text_value(_raw_one(msg, "In-Reply-To"))))
    references = tuple(extract_msgids(" ".join(_header_text_value(v) for v in _raw_all(msg, "References"))))

    from_name, from_addr = _sender(msg)
    if not from_name and from_addr:
        from_name = from_addr.split("@", 1)[0]
    date_header = _header_text(msg, "Date")
    date, offset, date_generated = _parse_date(date_header, arrival)
    if date_generated:
        defects.append(f"DateDefect: unusable Date {date_header[:80]!r}, arrival time used")

    content_type = _raw_one(msg, "Content-Type")
    return ParsedMessage(
        raw=raw,
        message_id=head.message_id,
        message_id_generated=head.message_id_generated,
        in_reply_to=in_reply_to,
        references=references,
        subject=_header_text(msg, "Subject")[:2000],
        from_name=from_name[:255],
        from_addr=from_addr[:320],
        to_addrs=tuple(a for _, a in _addresses(msg, "To")),
        cc_addrs=tuple(a for _, a in _addresses(msg, "Cc")),
        date=date,
        date_offset=offset,
        date_header=date_header[:500],
        date_generated=date_generated,
        body_text=body_text,
        body_html=body_html,
        is_flowed="format=flowed" in content_type.replace(" ", "").replace('"', "").lower(),
        attachments=attachments,
        auto_submitted=head.auto_submitted,
        precedence=head.precedence,
        headers=head.headers,
        defects=tuple(defects),
    )


def parse_head(raw: bytes) -> MessageHead:
    """Scan only the header block (about 10x cheaper than parse()); the same values parse() gives.

    The block ends where header_end says, as for the gateway's limits and parse() itself.
    """
    return _head(email.message_from_bytes(_headers_only(_readable(raw, []))), raw)


def _head(msg: StdMessage, raw: bytes) -> MessageHead:
    """The header fields parse() and parse_head() share, read one way."""
    ids = extract_msgids(_header_text_value(_raw_one(msg, "Message-ID")))
    message_id, generated = (ids[0], False) if ids else (generated_msgid(raw), True)
    return MessageHead(
        message_id=message_id,
        message_id_generated=generated,
        from_addr=_sender(msg)[1][:320],
        auto_submitted=_header_text(msg, "Auto-Submitted").lower(),
        precedence=_header_text(msg, "Precedence").lower(),
        headers=tuple((k, v[:2000]) for k, v in list(msg.raw_items())[:200]),
    )


def _sender(msg: StdMessage) -> tuple[str, str]:
    """(display name, address) of the author: From, else Sender."""
    froms = _addresses(msg, "From") or _addresses(msg, "Sender")
    return froms[0] if froms else ("", "")


Bodies = tuple[str, str, tuple[ParsedAttachment, ...]]


def _small_bodies(raw: bytes, defects: list[str]) -> tuple[StdMessage, Bodies]:
    """The parsed headers and the bodies as mail-parser decodes them (the common, small case)."""
    try:
        msg: StdMessage = email.message_from_bytes(raw)
        mp = mailparser.MailParser(message=_body_view(msg))
    except (MailParserError, RecursionError, Exception) as exc:  # noqa: BLE001
        # The parser gave up (deep nesting, pathological MIME): fall back to headers only.
        defects.append(f"ParseError: {type(exc).__name__}: {exc}"[:300])
        return email.message_from_bytes(_headers_only(raw)), ("", "", ())
    body_text, body_html, attachments = _bodies(mp, defects)
    if "\ufffd" in body_text or not (body_text or body_html or attachments):
        body_text = _plain_text(msg, defects) or body_text
    return msg, (body_text, body_html, attachments)


_BODY_HEADERS = ("content-type", "content-transfer-encoding", "content-disposition", "mime-version")


def _body_view(msg: StdMessage) -> StdMessage:
    """The message with only the headers that shape its body.

    mail-parser then decodes parts and attachments without re-parsing Received, address and
    date headers we read ourselves (that doubled the cost of every message).
    """
    view = copy.copy(msg)
    # A new list on the copy (what Message.__delitem__ does too): msg keeps all its headers.
    view._headers = [(k, v) for k, v in msg._headers if k.lower() in _BODY_HEADERS]  # type: ignore[attr-defined]
    return view


def _headers_only(raw: bytes) -> bytes:
    return raw[: header_end(raw)[1]]


def _bodies(mp: "mailparser.MailParser", defects: list[str]) -> tuple[str, str, tuple[ParsedAttachment, ...]]:
    for item in mp.defects or []:
        for kind, texts in (item.items() if isinstance(item, dict) else []):
            defects.extend(f"{kind}: {t}"[:300] for t in (texts if isinstance(texts, list) else [texts]))
    text = "\n".join(t for t in (mp.text_plain or []) if t).replace("\x00", "")
    html = "\n".join(t for t in (mp.text_html or []) if t).replace("\x00", "")
    attachments = []
    for att in mp.attachments or []:
        payload = att.get("payload") or ""
        try:
            data = base64.b64decode(payload) if att.get("binary") else payload.encode("utf-8", "surrogateescape")
        except (ValueError, UnicodeEncodeError) as exc:
            defects.append(f"AttachmentDefect: {att.get('filename')!r}: {exc}"[:300])
            continue
        attachments.append(
            ParsedAttachment(
                filename=str(att.get("filename") or "attachment")[:255],
                content_type=str(att.get("mail_content_type") or "application/octet-stream")[:255],
                data=data,
            )
        )
    return text, html, tuple(attachments)


def decode_text(data: bytes | memoryview, charset: str | None) -> tuple[str, str]:
    """(text, charset used): the declared charset if it fits, else UTF-8, else cp1252/Latin-1."""
    for cs in (charset, "utf-8", "cp1252"):
        if not cs:
            continue
        try:
            return str(data, cs), cs  # str(), unlike .decode(), also takes a memoryview
        except (LookupError, UnicodeDecodeError, ValueError, TypeError):  # ValueError: a NUL in the charset name
            continue
    return str(data, "latin-1"), "latin-1"


def _plain_text(msg: StdMessage, defects: list[str]) -> str:
    """Text parts decoded by us: for lying or unknown charsets, and multiparts whose boundary is lost."""
    out = []
    for part in msg.walk():
        if part.is_multipart() and isinstance(part.get_payload(), list):
            continue
        ctype = part.get_content_type()
        if part is not msg and (ctype != "text/plain" or part.get_content_disposition() == "attachment"):
            continue
        if part is msg and not ctype.startswith(("text/", "multipart/")):
            continue
        try:
            data = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001
            data = None
        if not isinstance(data, bytes):
            continue
        charset = part.get_content_charset()
        text, used = decode_text(data, charset)
        if used != (charset or "utf-8") and (charset or used != "utf-8"):
            defects.append(f"CharsetDefect: declared {charset!r}, decoded as {used}")
        out.append(text.replace("\x00", ""))
    return "\n".join(t for t in out if t.strip())
