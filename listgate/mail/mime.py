"""The body decoder for normal mail: mail-parser, given the body and the fields that shape it.

mail-parser is imported on the first message decoded (it costs 0.2-0.8 s): whoever only reads
header fields (the worker at start, the gateway's checks) never loads it. Its logger is quieted
here, once, for every process that decodes mail (it warns about every multipart/alternative).

What it shows is what the streaming decoder shows of the same mail (the rules are in stream's
docstring), but where mail-parser is not what a reader would expect, it is corrected here:
- an attached message (or report, or multipart) is the file that was sent, as the streaming
  decoder finds it: mail-parser writes it again, 8-bit text turned to U+FFFD or base64;
- text and html in a lying or unknown charset are decoded by decode_text, not to U+FFFD, and
  text in a 7-bit charset (ISO-2022-JP) is decoded, not shown as its escape sequences;
- an attachment whose base64 is broken is kept, repaired as far as it can be, with a defect,
  not dropped;
- a name the mail gives in 8-bit bytes is read as UTF-8, else Latin-1 (filenames.given_name),
  not as U+FFFD;
- a part the mail leaves unnamed (or names `filename=""`) is named by filenames.unnamed, not at
  random, and an unnamed file that is not text (an image sent inline) is kept, not dropped;
- a multipart that reuses its parent's boundary is read as the streaming decoder reads it: the
  standard library ends the parent at the inner closing delimiter, what follows was lost.
"""

from __future__ import annotations

import email
import functools
import logging
from email.message import Message as StdMessage
from email.policy import compat32
from typing import TYPE_CHECKING

from listgate.mail import stream
from listgate.mail.bodies import (
    decode_base64,
    decode_text,
    header_defects,
    mime_headers,
    shaping_fields,
)
from listgate.mail.fields import Header
from listgate.mail.filenames import (
    given_name,
    is_unnamed_attachment,
    may_be_named,
    safe_filename,
    unnamed,
)
from listgate.mail.message import Bodies, ParsedAttachment
from listgate.mail.values import decode_header

if TYPE_CHECKING:
    import mailparser


def message(raw: bytes) -> StdMessage:
    """The standard library's MIME tree of raw (compat32, bytes kept): to attach it to a notice, or
    walk a report."""
    return email.message_from_bytes(raw, policy=compat32)


@functools.cache
def parser_class() -> type[mailparser.MailParser]:
    """mail-parser's MailParser, imported on first use (see the module's docstring), its warnings
    silenced, without the two summaries it builds of every message (`mail` and `mail_partial`:
    every field decoded again and every part joined, about 60 µs of a linux-man message's CPU),
    which nothing here reads: text_plain, text_html, attachments and defects are what it gives."""
    import mailparser

    logging.getLogger("mailparser").setLevel(logging.ERROR)

    class BodiesOnly(mailparser.MailParser):
        def _make_mail(self, complete: bool = True) -> dict[str, object]:
            return {}

    return BodiesOnly


def decode(raw: bytes, header: Header, defects: list[str]) -> Bodies:
    """(plain text, html, attachments) as mail-parser decodes them; a failure leaves them empty, as
    a defect."""
    parser = parser_class()
    try:
        # Only the shaping fields: mail-parser would otherwise re-read Received, address and date
        # fields we read ourselves (that doubled the cost of every message).
        msg = _tree(header, raw[header.body :])
        if _reuses_boundary(msg):
            return stream.decode(raw, header, defects)
        names = _name_parts(msg)
        mp = parser(message=msg)
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - deep nesting, pathological MIME
        defects.append(f"ParseError: {type(exc).__name__}: {exc}"[:300])
        return "", "", ()
    header_defects(header, msg.get_content_type(), defects)
    body_text, body_html, attachments = _bodies(mp, defects, names)
    if _undecoded(body_text) or not (body_text or body_html or attachments):
        body_text = _texts(msg, defects, "text/plain") or body_text
    if _undecoded(body_html):
        body_html = _texts(msg, defects, "text/html") or body_html
    containers = [i for i, att in enumerate(mp.attachments or []) if not att.get("binary")]
    if containers:
        attachments = _as_sent(raw, header, attachments, containers)
    return body_text, body_html, attachments


def _tree(header: Header, body: bytes) -> StdMessage:
    """The standard library's tree (compat32) of the fields that shape the body (shaping_fields)
    and body: the same as email.message_from_bytes of those fields written out, a blank line and
    body.

    The feed parser reads a message line by line and builds its objects for every message (about
    40 µs before a line of the body); the body of a single part is then its payload as it came
    (its lines joined again). Here a single part is built as the parser builds it, its fields
    set as read (what the parser reads of "Name: value" is name and value) and its body's text
    given as its payload: about 0.04 ms of a linux-man message's 0.1 there. Multiparts and
    messages (message/rfc822, delivery reports), whose bodies the parser reads into parts, are
    parsed whole.
    """
    shaping = shaping_fields(header)
    msg = mime_headers(shaping)
    if msg.get_content_maintype() in ("multipart", "message"):
        view = b"".join(f"{n}: {v}\n".encode("ascii", "surrogateescape") for n, v in shaping)
        return email.message_from_bytes(view + b"\n" + body)
    msg.set_payload(body.decode("ascii", "surrogateescape"))  # as message_from_bytes decodes it
    return msg


def _undecoded(text: str) -> bool:
    """Whether mail-parser left text undecoded: U+FFFD for a lying or unknown charset, or the
    escapes of a 7-bit charset (ISO-2022-JP) it never applied to a 7bit part."""
    return "\ufffd" in text or "\x1b" in text


def _as_sent(
    raw: bytes, header: Header, attachments: tuple[ParsedAttachment, ...], containers: list[int]
) -> tuple[ParsedAttachment, ...]:
    """attachments, its attached messages (and multiparts) as the bytes that were sent.

    mail-parser stores them as the standard library writes them again: 8-bit text becomes U+FFFD
    or base64, folded fields lose their spaces. The streaming decoder finds the bytes sent; an
    attachment it does not find (the two read a broken structure differently) is left as it is.
    """
    found = list(stream.decode(raw, header, [])[2])
    out = list(attachments)
    for i in containers:
        att = out[i]
        j = next(
            (
                k
                for k, s in enumerate(found)
                if (s.filename, s.content_type) == (att.filename, att.content_type)
            ),
            None,
        )
        if j is not None:
            out[i] = ParsedAttachment(att.filename, att.content_type, found[j].data)
            del found[: j + 1]
    return tuple(out)


def _reuses_boundary(msg: StdMessage, open_: tuple[str, ...] = ()) -> bool:
    """Whether a multipart in msg reuses the boundary of one it is inside (not MIME: the standard
    library ends the outer one at the inner closing delimiter and mail-parser recovers only part
    of what follows); such mail is read as the streaming decoder reads it."""
    boundary = msg.get_boundary() if msg.get_content_maintype() == "multipart" else None
    if boundary is not None and boundary in open_:
        return True
    payload = msg.get_payload()
    inner = open_ + ((boundary,) if boundary is not None else ())
    return isinstance(payload, list) and any(
        _reuses_boundary(p, inner) for p in payload if isinstance(p, StdMessage)
    )


def _name_parts(msg: StdMessage) -> dict[str, str]:
    """Name msg's parts as the streaming decoder does, before mail-parser reads them: a name that
    leaves nothing once made safe is taken away, an unnamed attachment is given a token for our
    name (mail-parser's is random). What mail-parser reads as a name, to our reading of it.

    8-bit names are not rewritten (the standard library would write them again as U+FFFD): they
    are mapped back to our reading (filenames.given_name) instead.
    """
    names, n = {}, 0
    for part in msg.walk():
        named = may_be_named(part)
        filename = part.get_filename() if named else None
        ours = given_name(part) if named else None
        if ours is None and filename is not None:
            part.del_param("filename", header="Content-Disposition")
            part.del_param("name")
        elif filename is not None and ours is not None:
            names[decode_header(filename)] = ours
        if not is_unnamed_attachment(part, ours):
            continue
        n += 1  # counted as the streaming decoder counts them
        if not part.get("Content-ID") or part.get_content_subtype() in ("html", "plain"):
            token = f"listgate-unnamed-{n}"
            # A new Content-Disposition (its kind kept): a broken Content-Type takes no parameter
            disposition = part.get_content_disposition() or "attachment"
            del part["Content-Disposition"]
            part["Content-Disposition"] = f'{disposition}; filename="{token}"'
            names[token] = unnamed(part, n)
    return names


def _bodies(mp: mailparser.MailParser, defects: list[str], names: dict[str, str]) -> Bodies:
    for item in mp.defects or []:
        for kind, texts in item.items() if isinstance(item, dict) else []:
            defects.extend(
                f"{kind}: {t}"[:300] for t in (texts if isinstance(texts, list) else [texts])
            )
    text = "\n".join(t for t in (mp.text_plain or []) if t).replace("\x00", "")
    html = "\n".join(t for t in (mp.text_html or []) if t).replace("\x00", "")
    attachments = []
    for att in mp.attachments or []:
        data = str(att.get("payload") or "").encode("utf-8", "surrogateescape")
        if att.get("binary"):
            decoded, problem = decode_base64(data)
            data = bytes(decoded)  # the bytes given back as they are when they cannot be decoded
            if problem:
                defects.append(f"AttachmentDefect: {att.get('filename')!r}: {problem}"[:300])
        filename = str(att.get("filename") or "")
        filename = names.get(filename, filename)
        attachments.append(
            ParsedAttachment(
                filename=safe_filename(filename),
                content_type=str(att.get("mail_content_type") or "application/octet-stream")[:255],
                data=data,
            )
        )
    return text, html, tuple(attachments)


def _texts(msg: StdMessage, defects: list[str], wanted: str) -> str:
    """The wanted (text/plain or text/html) parts decoded by us: for lying or unknown charsets,
    and (plain text) multiparts whose boundary is lost."""
    out = []
    for part in msg.walk():
        if part.is_multipart() and isinstance(part.get_payload(), list):
            continue
        ctype = part.get_content_type()
        if part is not msg and (ctype != wanted or part.get_content_disposition() == "attachment"):
            continue
        if (
            part is msg
            and ctype != wanted
            and (wanted != "text/plain" or not ctype.startswith(("text/", "multipart/")))
        ):
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
