"""The body decoder for normal mail: mail-parser, given the body and the fields that shape it.

mail-parser is imported on the first message decoded (it costs 0.2-0.8 s): whoever only reads
header fields (the worker at start, the gateway's checks) never loads it. Its logger is quieted
here, once, for every process that decodes mail (it warns about every multipart/alternative).
"""

from __future__ import annotations

import base64
import email
import functools
import logging
import re
from email.message import Message as StdMessage
from email.policy import compat32
from types import ModuleType
from typing import TYPE_CHECKING

from listgate.mail.bodies import decode_text, header_defects, shaping_fields
from listgate.mail.fields import Header
from listgate.mail.filenames import is_unnamed_attachment, safe_filename, unnamed
from listgate.mail.message import Bodies, ParsedAttachment
from listgate.mail.values import decode_header

# The name mail-parser makes up, at random, for an attachment the mail leaves unnamed.
_MADE_UP = re.compile(r"[a-z]{10}\.(?:txt|rtf)")

if TYPE_CHECKING:
    import mailparser


def message(raw: bytes) -> StdMessage:
    """The standard library's MIME tree of raw (compat32, bytes kept): to attach it to a notice, or
    walk a report."""
    return email.message_from_bytes(raw, policy=compat32)


@functools.cache
def _mailparser() -> ModuleType:
    """mail-parser, imported on first use (see the module's docstring), its warnings silenced."""
    import mailparser

    logging.getLogger("mailparser").setLevel(logging.ERROR)
    return mailparser


def decode(raw: bytes, header: Header, defects: list[str]) -> Bodies:
    """(plain text, html, attachments) as mail-parser decodes them; a failure leaves them empty, as
    a defect."""
    mailparser = _mailparser()
    view = b"".join(
        f"{n}: {v}\n".encode("ascii", "surrogateescape") for n, v in shaping_fields(header)
    )
    try:
        # Only the shaping fields: mail-parser would otherwise re-read Received, address and date
        # fields we read ourselves (that doubled the cost of every message).
        msg: StdMessage = email.message_from_bytes(view + b"\n" + raw[header.body :])
        mp = mailparser.MailParser(message=msg)
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - deep nesting, pathological MIME
        defects.append(f"ParseError: {type(exc).__name__}: {exc}"[:300])
        return "", "", ()
    header_defects(header, msg.get_content_type(), defects)
    body_text, body_html, attachments = _bodies(mp, defects, _names_for_unnamed(msg))
    if "\ufffd" in body_text or not (body_text or body_html or attachments):
        body_text = _plain_text(msg, defects) or body_text
    return body_text, body_html, attachments


def _names_for_unnamed(msg: StdMessage) -> tuple[list[str], set[str]]:
    """(our names for the parts mail-parser names at random, in its order; the names the mail
    gives its parts).

    Those parts are the unnamed attachments it does not name by their Content-ID; the message is
    not changed to name them first, as what it stores of an attached message would change too.
    """
    names, given, n = [], set(), 0
    for part in msg.walk():
        if (filename := part.get_filename()) is not None:
            given.add(decode_header(filename))
        elif is_unnamed_attachment(part):
            n += 1  # counted as the streaming decoder counts them
            if not part.get("Content-ID") or part.get_content_subtype() in ("html", "plain"):
                names.append(unnamed(part, n))
    return names, given


def _bodies(
    mp: mailparser.MailParser, defects: list[str], unnamed_parts: tuple[list[str], set[str]]
) -> Bodies:
    for item in mp.defects or []:
        for kind, texts in item.items() if isinstance(item, dict) else []:
            defects.extend(
                f"{kind}: {t}"[:300] for t in (texts if isinstance(texts, list) else [texts])
            )
    text = "\n".join(t for t in (mp.text_plain or []) if t).replace("\x00", "")
    html = "\n".join(t for t in (mp.text_html or []) if t).replace("\x00", "")
    attachments = []
    names, given = iter(unnamed_parts[0]), unnamed_parts[1]
    for att in mp.attachments or []:
        payload = att.get("payload") or ""
        try:
            data = (
                base64.b64decode(payload)
                if att.get("binary")
                else payload.encode("utf-8", "surrogateescape")
            )
        except (ValueError, UnicodeEncodeError) as exc:
            defects.append(f"AttachmentDefect: {att.get('filename')!r}: {exc}"[:300])
            continue
        filename = str(att.get("filename") or "")
        if _MADE_UP.fullmatch(filename) and filename not in given:
            filename = next(names, filename)
        attachments.append(
            ParsedAttachment(
                filename=safe_filename(filename),
                content_type=str(att.get("mail_content_type") or "application/octet-stream")[:255],
                data=data,
            )
        )
    return text, html, tuple(attachments)


def _plain_text(msg: StdMessage, defects: list[str]) -> str:
    """Text parts decoded by us: for lying or unknown charsets, and multiparts whose boundary is
    lost."""
    out = []
    for part in msg.walk():
        if part.is_multipart() and isinstance(part.get_payload(), list):
            continue
        ctype = part.get_content_type()
        if part is not msg and (
            ctype != "text/plain" or part.get_content_disposition() == "attachment"
        ):
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
