"""Atom feeds for a list, a thread and a search."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from listgate import lists, subscriptions
from listgate.db import transaction
from listgate.models import MailingList, Message, Person, Thread
from listgate.states import PostState
from listgate.threads import resolve
from webarchive.context import db, resources, settings
from webarchive.reading.access import (
    readable_list,
    readable_list_ids,
    readable_posts,
    reads_private,
)
from webarchive.security import current_address, signed_in

bp = Blueprint("feeds", __name__)
FEED_SIZE = 50


def absolute(path: str) -> str:
    """An absolute URL on this archive (feeds are read elsewhere)."""
    return settings().base_url + path


def entry_updated(msg: Message) -> datetime:
    """When a post last changed as a feed shows it: sent, or edited since (feed readers keep an
    entry as they first saw it until this moves)."""
    return max(msg.date, msg.edited_at) if msg.edited_at else msg.date


def atom_response(
    title: str, messages: list[Message], self_path: str, html_path: str = "", subtitle: str = ""
) -> Response:
    """An Atom document of messages, newest first; html_path is the page it mirrors."""
    updated = max(map(entry_updated, messages), default=datetime(2000, 1, 1, tzinfo=UTC))
    xml = render_template(
        "feeds/atom.xml",
        title=title,
        subtitle=subtitle,  # text: a reader keeps its line breaks
        messages=messages,
        updated=updated,
        feed_id=absolute(self_path),
        self_url=absolute(self_path),
        absolute=absolute,
        html_url=absolute(html_path) if html_path else "",
        entry_updated=entry_updated,
    )
    return Response(xml, mimetype="application/atom+xml")


@bp.get("/lists/<name>/feed.atom")
def list_feed(name: str) -> Response:
    """The newest posts of a list."""
    session = db()
    mlist = readable_list(session, name)
    return atom_response(
        mlist.title or mlist.name,
        _newest(mlist),
        url_for("feeds.list_feed", name=mlist.name),
        url_for("pages.list_page", name=mlist.name),
        mlist.description,
    )


def _newest(mlist: MailingList) -> list[Message]:
    return list(
        db().scalars(
            select(Message)
            .where(Message.list_id == mlist.id, Message.status == PostState.VISIBLE)
            .order_by(Message.date.desc(), Message.id.desc())
            .limit(FEED_SIZE)
        )
    )


@bp.get("/threads/<id:thread_id>/feed.atom")
def thread_feed(thread_id: int) -> Response:
    """The newest posts of a thread."""
    thread, messages = readable_posts(db(), thread_id, newest=FEED_SIZE)
    return atom_response(
        thread.subject or "(no subject)",
        messages,
        url_for("feeds.thread_feed", thread_id=thread.id),
        url_for("pages.thread", thread_id=thread.id),
    )


MIN_KEY = 24  # characters of a secret feed key


def _feed_key(address: str) -> str:
    """The person's secret feed key, made on first use."""
    person = db().get(Person, address)
    if person is not None and person.feed_token:
        return person.feed_token
    with transaction(resources().writer) as session:
        # read locked (made if need be): two pages shown at once show the one key that works
        person = subscriptions.person_settings(session, address)
        if not person.feed_token:
            person.feed_token = secrets.token_urlsafe(24)
        return person.feed_token


@bp.app_template_global()
def secret_feeds() -> list[tuple[str, str]]:
    """(list name, secret feed URL) of each private list the signed-in reader belongs to."""
    address, session = current_address(), db()
    if address is None:
        return []
    allowed = readable_list_ids(session)
    mine = [
        m
        for m in session.scalars(
            select(MailingList).where(MailingList.private.is_(True)).order_by(MailingList.name)
        )
        if allowed is None or m.id in allowed
    ]
    if not mine:
        return []
    key = _feed_key(address)
    return [
        (m.name, absolute(url_for("feeds.secret_list_feed", token=key, name=m.name))) for m in mine
    ]


@bp.app_template_global()
def list_feed_url(mlist: MailingList) -> str:
    """The feed link a list's page offers: a private list's is the signed-in reader's secret link
    (the plain one needs a session, which a feed reader does not have)."""
    address = current_address()
    if not mlist.private or address is None:
        return url_for("feeds.list_feed", name=mlist.name)
    return absolute(url_for("feeds.secret_list_feed", token=_feed_key(address), name=mlist.name))


@bp.get("/feeds/<token>/lists/<name>.atom")
def secret_list_feed(token: str, name: str) -> Response:
    """A private list's feed for a feed reader that cannot sign in: the link itself is the key."""
    session = db()
    person = _key_holder(token)
    mlist = lists.get(session, name)
    if person is None or mlist is None or not reads_private(session, mlist, person.address):
        abort(404)  # revoked, or no longer a reader: the answer for a list that does not exist
    return atom_response(
        mlist.title or mlist.name,
        _newest(mlist),
        url_for("feeds.secret_list_feed", token=token, name=mlist.name),
        url_for("pages.list_page", name=mlist.name),
        mlist.description,
    )


def _key_holder(token: str) -> Person | None:
    """Whose secret feed key token is (None: nobody's, or revoked)."""
    if len(token) < MIN_KEY:
        return None
    return db().scalars(select(Person).where(Person.feed_token == token).limit(1)).first()


@bp.app_template_global()
def thread_feed_url(thread: Thread) -> str:
    """The feed link a thread's page offers: on a private list, the reader's secret link."""
    address = current_address()
    if not thread.mailing_list.private or address is None:
        return url_for("feeds.thread_feed", thread_id=thread.id)
    key = _feed_key(address)
    return absolute(url_for("feeds.secret_thread_feed", token=key, thread_id=thread.id))


@bp.get("/feeds/<token>/threads/<id:thread_id>.atom")
def secret_thread_feed(token: str, thread_id: int) -> Response:
    """A private list's thread feed for a feed reader: the link itself is the key."""
    session = db()
    person, thread = _key_holder(token), resolve(session, thread_id)
    if (
        person is None
        or thread is None
        or thread.message_count <= 0
        or not reads_private(session, thread.mailing_list, person.address)
    ):
        abort(404)  # revoked, or no longer a reader: the answer for a thread that does not exist
    messages = session.scalars(
        select(Message)
        .where(Message.thread_id == thread.id, Message.status == PostState.VISIBLE)
        .order_by(Message.date.desc(), Message.id.desc())
        .limit(FEED_SIZE)
    )
    return atom_response(
        thread.subject or "(no subject)",
        list(messages),
        url_for("feeds.secret_thread_feed", token=token, thread_id=thread.id),
        url_for("pages.thread", thread_id=thread.id),
    )


@bp.post("/me/feeds/revoke")
@signed_in
def revoke_feeds() -> BaseResponse:
    """Make every secret feed link given so far stop working (new ones are made when shown)."""
    with transaction(resources().writer) as session:
        subscriptions.person_settings(session, current_address() or "").feed_token = ""
    flash("Your old feed links no longer work; the new ones are below.", "ok")
    return redirect(url_for("acting.my_subscriptions"), 303)
