"""Atom feeds for a list, a thread and a search."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, render_template, url_for
from sqlalchemy import select

from listgate.models import Message
from listgate.models.archive import VISIBLE
from webarchive.access import readable_list
from webarchive.context import db, settings
from webarchive.lookup import readable_thread

bp = Blueprint("feeds", __name__)
FEED_SIZE = 50


def absolute(path: str) -> str:
    """An absolute URL on this archive (feeds are read elsewhere)."""
    return settings().base_url + path


def atom_response(title: str, messages: list[Message], self_path: str) -> Response:
    """An Atom document of messages, newest first."""
    updated = max((m.date for m in messages), default=datetime(2000, 1, 1, tzinfo=timezone.utc))
    xml = render_template("feeds/atom.xml", title=title, messages=messages, updated=updated,
                          feed_id=absolute(self_path), self_url=absolute(self_path), absolute=absolute)
    return Response(xml, mimetype="application/atom+xml")


@bp.get("/lists/<name>/feed.atom")
def list_feed(name: str):  # type: ignore[no-untyped-def]
    """The newest posts of a list."""
    session = db()
    mlist = readable_list(session, name)
    messages = list(session.scalars(select(Message).where(Message.list_id == mlist.id, Message.status == VISIBLE)
                                    .order_by(Message.date.desc(), Message.id.desc()).limit(FEED_SIZE)))
    return atom_response(mlist.title or mlist.name, messages, url_for("feeds.list_feed", name=mlist.name))


@bp.get("/threads/<int:thread_id>/feed.atom")
def thread_feed(thread_id: int):  # type: ignore[no-untyped-def]
    """The newest posts of a thread."""
    session = db()
    thread = readable_thread(session, thread_id)
    messages = list(session.scalars(select(Message).where(Message.thread_id == thread.id, Message.status == VISIBLE)
                                    .order_by(Message.date.desc(), Message.id.desc()).limit(FEED_SIZE)))
    return atom_response(thread.subject or "(no subject)", messages, url_for("feeds.thread_feed", thread_id=thread.id))


