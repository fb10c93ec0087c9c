"""The JSON API: lists, a list's threads (keyset), a thread in order, one message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate.models import MailingList, Message
from listgate.states import PostState
from webarchive.context import db, settings
from webarchive.ids import whole
from webarchive.reading.access import readable_list, readable_list_ids, readable_thread
from webarchive.reading.threads import (
    BadCursor,
    find_message,
    nearest_visible_parent,
    thread_nodes,
    thread_page,
)
from webarchive.rendering.bodies import display_name, mask_addresses
from webarchive.security import current_address

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_LIMIT = 200


def iso(value: datetime | None) -> str | None:
    """An ISO 8601 UTC timestamp, or None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@bp.get("/lists")
def lists() -> Response:
    """Every list this visitor may read."""
    session = db()
    query = select(MailingList).order_by(MailingList.name)
    allowed = readable_list_ids(session)
    if allowed is not None:
        query = query.where(MailingList.id.in_(allowed))
    domain = settings().domain
    return jsonify(
        {
            "lists": [
                {
                    "name": m.name,
                    "address": m.address(domain),
                    "title": m.title,
                    "description": m.description,
                    "threads": m.thread_count,
                    "messages": m.message_count,
                    "last_activity": iso(m.last_activity),
                }
                for m in session.scalars(query)
            ]
        }
    )


@bp.get("/lists/<name>/threads")
def threads(name: str) -> Response:
    """Threads of a list, most recent activity first; follow "next" for more."""
    session = db()
    mlist = readable_list(session, name)
    limit = _limit(request.args.get("limit", "50"))
    try:
        rows, nxt = thread_page(session, mlist, limit, request.args.get("cursor") or None)
    except BadCursor as exc:
        abort(400, description=str(exc))
    return jsonify(
        {
            "threads": [
                {
                    "id": t.id,
                    "subject": t.subject,
                    "messages": t.message_count,
                    "participants": t.participant_count,
                    "starter": t.starter_name,
                    "featured": t.featured,
                    "last_activity": iso(t.last_activity),
                }
                for t in rows
            ],
            "next": nxt,
        }
    )


def _limit(raw: str) -> int:
    limit = whole(raw, MAX_LIMIT)
    if limit is None:
        abort(400, description=f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


@bp.get("/threads/<id:thread_id>")
def thread(thread_id: int) -> Response:
    """A thread's messages in thread order (depth first, siblings by date)."""
    session = db()
    found = readable_thread(session, thread_id)
    nodes = thread_nodes(session, found)
    anonymous = current_address() is None
    return jsonify(
        {
            "id": found.id,
            "list": found.mailing_list.name,
            "subject": found.subject,
            "featured": found.featured,
            "last_activity": iso(found.last_activity),
            "messages": [
                {
                    "message_id": n.message.message_id,
                    "parent_message_id": n.parent.message_id if n.parent else None,
                    "depth": n.depth,
                    **(
                        {"removed": True}
                        if n.message.status == PostState.REMOVED
                        else {
                            "subject": n.message.subject,
                            "from_name": display_name(n.message.from_name, anonymous),
                            "date": iso(n.message.date),
                        }
                    ),
                }
                for n in nodes
            ],
        }
    )


@bp.get("/messages/<path:message_id>")
def message(message_id: str) -> Response:
    """One message by Message-ID (percent-encoded, without angle brackets)."""
    session = db()
    msg = find_message(session, message_id.strip().strip("<>"), readable_list_ids(session))
    if msg is None:
        abort(404, description=f"no archived message with Message-ID {message_id[:200]!r}")
    return jsonify(message_json(session, msg))


def message_json(session: Session, msg: Message) -> dict[str, Any]:
    """The API view of one message."""
    parent = nearest_visible_parent(session, msg)
    anonymous = current_address() is None
    return {
        "message_id": msg.message_id,
        "thread_id": msg.thread_id,
        "list": msg.thread.mailing_list.name,
        "parent_message_id": parent.message_id if parent else None,
        "subject": msg.subject,
        "from_name": display_name(msg.from_name, anonymous),
        "date": iso(msg.date),
        "body_text": mask_addresses(msg.body_text) if anonymous else msg.body_text,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "url": url_for(
                    "exports.attachment", attachment_id=a.id, filename=a.filename or "attachment"
                ),
            }
            for a in msg.attachments
        ],
        "raw_url": url_for("exports.raw", message_pk=msg.id),
    }
