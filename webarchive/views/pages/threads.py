"""The pages of one thread: the thread (as a tree or flat), and one message of it."""

from __future__ import annotations

from flask import abort, redirect, request, url_for
from markupsafe import Markup
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate.models import Message, Subscription, Thread
from listgate.states import PostState, SubscriptionKind, SubscriptionState
from webarchive.context import db, list_version, remembered, resources
from webarchive.reading import visits
from webarchive.reading.access import readable_list_ids, readable_message, readable_thread
from webarchive.reading.threads import Node, fill_nodes, find_message, thread_nodes
from webarchive.rendering import clock
from webarchive.rendering import rows as rows_html
from webarchive.security import current_address
from webarchive.templating import anonymous, reader_zone, reader_zone_name, request_now
from webarchive.urls import carried_args
from webarchive.views.pages.blueprint import bp
from webarchive.views.pages.posts import posts_page


@bp.get("/threads/<id:thread_id>")
def thread(thread_id: int) -> str | Response:
    """A thread as an indented tree, or flat by date with ?view=flat; its outline and neighbours."""
    session = db()
    found = readable_thread(session, thread_id)
    if found.id != thread_id:
        return redirect(
            url_for("pages.thread", thread_id=found.id, **carried_args("thread_id")), 301
        )
    view = "flat" if request.args.get("view") == "flat" else "tree"
    address = current_address()
    nodes = thread_nodes(session, found, address, placeholders=True)
    last_visit = (
        visits.visit(session, resources().writer, address, found.id, nodes) if address else None
    )
    outline = _outline(found, nodes)
    if view == "flat":
        nodes = sorted(nodes, key=lambda n: (n.message.date, n.message.id))  # as they are numbered
    mlist = found.mailing_list
    # The threads around this one move only when what the list shows changes.
    newer, older = remembered(
        "neighbours", found.id, list_version(mlist), lambda: visits.neighbours(session, found)
    )
    rows = _thread_rows(session, found)
    return posts_page(
        "pages/thread.html",
        found,
        nodes,
        view == "tree",
        nodes=nodes,
        view=view,
        outline=outline,
        # tombstones, placeholders: no posts
        posts=sum(1 for n in nodes if n.message.status == PostState.VISIBLE),
        newer=newer,
        older=older,
        following=_thread_state(rows),
        mail_stopped=SubscriptionState.SUSPENDED
        in (rows.get(SubscriptionKind.LIST), rows.get(SubscriptionKind.DIGEST)),
        last_visit=last_visit,
        new_count=sum(n.new for n in nodes),
    )


def _outline(found: Thread, nodes: list[Node]) -> Markup:
    """The thread's outline: one for each kind of reader until the thread or the minute changes."""
    now = request_now()
    if any(n.new for n in nodes):
        return rows_html.outline_html(nodes, anonymous(), reader_zone(), now)
    recent = now - found.last_activity < clock.RECENT  # "3 minutes ago" moves with the clock
    # Everything a row shows, in order: a post hidden as another comes back, or one hung
    # elsewhere, changes it with no count moving.
    version = (
        tuple(
            (n.message.id, n.depth, n.number, n.message.status, n.message.from_name, n.message.date)
            for n in nodes
        ),
        now.replace(second=0, microsecond=0) if recent else None,
    )
    return remembered(
        "outlines",
        (found.id, anonymous(), reader_zone_name()),
        version,
        lambda: rows_html.outline_html(nodes, anonymous(), reader_zone(), now),
    )


_THREAD_STATE = select(Subscription.kind, Subscription.status).where(
    Subscription.list_id == bindparam("list_id"),
    Subscription.address == bindparam("address"),
    Subscription.status.in_(
        (SubscriptionState.ACTIVE, SubscriptionState.AWAITING, SubscriptionState.SUSPENDED)
    ),
    or_(
        Subscription.thread_key == bindparam("thread_id"),
        Subscription.kind.in_((SubscriptionKind.LIST, SubscriptionKind.DIGEST)),
    ),
)


def _thread_rows(session: Session, thread: Thread) -> dict[SubscriptionKind, SubscriptionState]:
    """The signed-in person's say in this thread: its follow or mute, her list or digest."""
    address = current_address()
    if address is None:
        return {}
    return dict(
        session.execute(
            _THREAD_STATE, {"list_id": thread.list_id, "address": address, "thread_id": thread.id}
        ).all()
    )


def _thread_state(rows: dict[SubscriptionKind, SubscriptionState]) -> str:
    """What the signed-in person chose for this thread (_thread_rows): following, muted,
    awaiting, member (of the whole list) or ''. Bounces stopping her mail are not a choice: the
    page says so beside it (mail_stopped)."""
    if rows.get(SubscriptionKind.MUTE) == SubscriptionState.ACTIVE:
        return "muted"
    if rows.get(SubscriptionKind.THREAD) == SubscriptionState.ACTIVE:
        return "following"
    # suspended by bounces: still a member, who mutes a thread to keep it away once back
    if rows.get(SubscriptionKind.LIST) in (SubscriptionState.ACTIVE, SubscriptionState.SUSPENDED):
        return "member"
    return SubscriptionState.AWAITING if SubscriptionState.AWAITING in rows.values() else ""


@bp.get("/m/<path:message_id>")
def permalink(message_id: str) -> str:
    """One message by its Message-ID."""
    session = db()
    msg = find_message(session, message_id.strip().strip("<>"), readable_list_ids(session))
    if msg is None:
        abort(404)
    return _single(session, msg)


@bp.get("/messages/<id:message_pk>")
def message(message_pk: int) -> str:
    """One message by its archive number."""
    session = db()
    return _single(session, readable_message(session, message_pk))


def _single(session: Session, msg: Message) -> str:
    found = readable_thread(session, msg.thread_id)
    node = Node(msg)
    fill_nodes(session, [node], current_address())
    return posts_page("pages/message.html", found, [node], False, "h1", node=node)
