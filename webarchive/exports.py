"""Downloads: raw .eml (the exact bytes received), thread and month mbox, attachments."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import quote

from flask import Blueprint, Response, abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate.models import Attachment, Blob, Message, MessageVariant, RawMessage
from listgate.models.archive import VISIBLE
from webarchive.access import readable_list
from webarchive.context import db
from webarchive.lookup import readable_message, readable_thread
from webarchive.security import signed_in

bp = Blueprint("exports", __name__)
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def download(data: bytes, filename: str, mimetype: str) -> Response:
    """A response the browser saves instead of rendering."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "download"
    response = Response(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def mbox_entry(msg: Message, raw: bytes) -> bytes:
    """One mboxrd entry: a From_ line, the raw bytes with From_ lines quoted, a blank line."""
    when = msg.date.astimezone(timezone.utc).strftime("%a %b %d %H:%M:%S %Y")
    sender = msg.from_addr or "MAILER-DAEMON"
    body = _FROM_LINE.sub(rb">\1", raw.replace(b"\r\n", b"\n"))
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender} {when}\n".encode("ascii", "replace") + body + b"\n"


def _mbox(session: Session, messages: list[Message]) -> bytes:
    raws = {r.id: r.data for r in session.scalars(select(RawMessage).where(RawMessage.id.in_({m.raw_id for m in messages})))}
    return b"".join(mbox_entry(m, raws[m.raw_id]) for m in messages)


@bp.get("/messages/<int:message_pk>.eml")
@signed_in  # whole messages carry full addresses: not for anonymous harvesting
def raw(message_pk: int):  # type: ignore[no-untyped-def]
    """The message exactly as received."""
    session = db()
    msg = readable_message(session, message_pk)
    return download(msg.raw.data, f"{msg.message_id}.eml", "message/rfc822")


@bp.get("/messages/<int:message_pk>/variants/<int:variant_id>.eml")
@signed_in
def variant_raw(message_pk: int, variant_id: int):  # type: ignore[no-untyped-def]
    """A different message that arrived with this message's Message-ID, exactly as received."""
    session = db()
    msg = readable_message(session, message_pk)
    variant = session.get(MessageVariant, variant_id)
    if variant is None or variant.message_pk != msg.id:
        abort(404)
    return download(variant.raw.data, f"{msg.message_id}-variant-{variant.id}.eml", "message/rfc822")


@bp.get("/threads/<int:thread_id>.mbox")
@signed_in  # whole messages carry full addresses: not for anonymous harvesting
def thread_mbox(thread_id: int):  # type: ignore[no-untyped-def]
    """Every visible post of a thread as an mbox, by date."""
    session = db()
    thread = readable_thread(session, thread_id)
    messages = list(session.scalars(select(Message).where(
        Message.thread_id == thread.id, Message.status == VISIBLE).order_by(Message.date, Message.id)))
    return download(_mbox(session, messages), f"thread-{thread.id}.mbox", "application/mbox")


@bp.get("/lists/<name>/<int:year>/<int:month>.mbox")
@signed_in  # whole messages carry full addresses: not for anonymous harvesting
def month_mbox(name: str, year: int, month: int):  # type: ignore[no-untyped-def]
    """Every visible post of a list in one month as an mbox."""
    session = db()
    mlist = readable_list(session, name)
    start, end = month_range(year, month)
    messages = list(session.scalars(select(Message).where(
        Message.list_id == mlist.id, Message.status == VISIBLE, Message.date >= start, Message.date < end,
    ).order_by(Message.date, Message.id)))
    return download(_mbox(session, messages), f"{mlist.name}-{year:04d}-{month:02d}.mbox", "application/mbox")


def month_range(year: int, month: int) -> tuple[datetime, datetime]:
    """[start, end) of a month in UTC, or 404 for an impossible month."""
    if not (1 <= month <= 12 and 1970 <= year <= 9998):
        abort(404)
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


@bp.get("/attachments/<int:attachment_id>/<path:filename>")
def attachment(attachment_id: int, filename: str = ""):  # type: ignore[no-untyped-def]
    """An attachment, always downloaded, never rendered by the browser."""
    session = db()
    att = session.get(Attachment, attachment_id)
    if att is None:
        abort(404)
    readable_message(session, att.message_pk)
    blob = session.get_one(Blob, att.sha256)
    return download(blob.data, att.filename or "attachment", "application/octet-stream")
