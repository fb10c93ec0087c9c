"""Downloads: raw .eml (the exact bytes received), thread and month mbox, attachments."""

from __future__ import annotations

import re
from datetime import UTC
from urllib.parse import quote

from flask import Blueprint, Response, abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate.models import Attachment, Blob, Message, MessageVariant, RawMessage
from webarchive.context import db
from webarchive.ratelimit import client_ip, limit
from webarchive.reading.access import readable_list, readable_message, readable_posts
from webarchive.reading.listing import month_posts, month_range
from webarchive.security import current_address
from webarchive.templating import PREVIEW_TYPES, previewable

bp = Blueprint("exports", __name__)
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


def declared_type(content_type: str) -> str:
    """The declared type if it is a well-formed type/subtype, else application/octet-stream."""
    value = content_type.split(";", 1)[0].strip().lower()
    return value if _MIME_TYPE.match(value) else "application/octet-stream"


def download(data: bytes, filename: str, mimetype: str) -> Response:
    """A response the browser saves instead of rendering."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "download"
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def mbox_entry(msg: Message, raw: bytes) -> bytes:
    """One mboxrd entry: a From_ line, the raw bytes with From_ lines quoted, a blank line."""
    when = msg.date.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
    sender = msg.from_addr or "MAILER-DAEMON"
    body = _FROM_LINE.sub(rb">\1", raw.replace(b"\r\n", b"\n"))
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender} {when}\n".encode("ascii", "replace") + body + b"\n"


def _mbox(session: Session, messages: list[Message]) -> bytes:
    raws = {
        r.id: r.data
        for r in session.scalars(
            select(RawMessage).where(RawMessage.id.in_({m.raw_id for m in messages}))
        )
    }
    return b"".join(mbox_entry(m, raws[m.raw_id]) for m in messages)


def _count_anonymous() -> None:
    """Serve whole messages to anonymous readers (as public-inbox does); count them per client."""
    if current_address() is None:
        limit("export", client_ip())


@bp.get("/messages/<id:message_pk>.eml")
def raw(message_pk: int) -> Response:
    """The message exactly as received."""
    _count_anonymous()
    session = db()
    msg = readable_message(session, message_pk)
    return download(msg.raw.data, f"{msg.message_id}.eml", "message/rfc822")


@bp.get("/messages/<id:message_pk>/variants/<id:variant_id>.eml")
def variant_raw(message_pk: int, variant_id: int) -> Response:
    """A different message that arrived with this message's Message-ID, exactly as received."""
    _count_anonymous()
    session = db()
    msg = readable_message(session, message_pk)
    variant = session.get(MessageVariant, variant_id)
    if variant is None or variant.message_pk != msg.id:
        abort(404)
    return download(
        variant.raw.data, f"{msg.message_id}-variant-{variant.id}.eml", "message/rfc822"
    )


@bp.get("/threads/<id:thread_id>.mbox")
def thread_mbox(thread_id: int) -> Response:
    """Every visible post of a thread as an mbox, by date."""
    _count_anonymous()
    session = db()
    thread, messages = readable_posts(session, thread_id)
    return download(_mbox(session, messages), f"thread-{thread.id}.mbox", "application/mbox")


@bp.get("/lists/<name>/<number(most=9998):year>/<number(most=12, zeros=True):month>.mbox")
def month_mbox(name: str, year: int, month: int) -> Response:
    """Every visible post of a list in one month as an mbox."""
    _count_anonymous()
    session = db()
    mlist = readable_list(session, name)
    messages = month_posts(session, mlist, *month_range(year, month))
    return download(
        _mbox(session, messages), f"{mlist.name}-{year:04d}-{month:02d}.mbox", "application/mbox"
    )


def _readable_attachment(attachment_id: int) -> tuple[Attachment, bytes]:
    session = db()
    att = session.get(Attachment, attachment_id)
    if att is None:
        abort(404)
    readable_message(session, att.message_pk)
    return att, session.get_one(Blob, att.sha256).data


@bp.get("/previews/<id:attachment_id>")
def preview(attachment_id: int) -> Response:
    """An image shown inline: its type checked against its first bytes, sandboxed, never sniffed."""
    att, data = _readable_attachment(attachment_id)
    kind = att.content_type.lower()
    if (
        not previewable(att)
        or not data.startswith(PREVIEW_TYPES[kind])
        or (kind == "image/webp" and data[8:12] != b"WEBP")
    ):
        abort(404, description="This attachment has no preview; download it instead.")
    response = Response(data, mimetype=kind)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


@bp.get("/attachments/<id:attachment_id>/<path:filename>")
def attachment(attachment_id: int, filename: str = "") -> Response:
    """An attachment, downloaded with its declared type, never rendered by the browser."""
    att, data = _readable_attachment(attachment_id)
    return download(data, att.filename or "attachment", declared_type(att.content_type))
