"""Reading pages: the lists, a list's threads, a thread, a message, an author, a month."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import and_, bindparam, extract, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate.models import MailingList, Message, Subscription, Thread
from listgate.states import PostState, SubscriptionKind, SubscriptionState
from webarchive.context import db, resources, settings
from webarchive.reading import listing, talk, visits
from webarchive.reading.access import (
    is_moderator,
    readable_list,
    readable_list_ids,
    readable_message,
    readable_thread,
)
from webarchive.reading.listing import month_range
from webarchive.reading.threads import (
    BadCursor,
    Node,
    decode_cursor,
    encode_cursor,
    fill_attachments,
    fill_nodes,
    find_message,
    thread_nodes,
)
from webarchive.rendering import bodies, clock
from webarchive.rendering import rows as rows_html
from webarchive.rendering.bodies import FragmentCache
from webarchive.security import csrf_token, current_address
from webarchive.templating import (
    anonymous,
    font_choice,
    macros,
    reader_zone,
    reader_zone_name,
    request_now,
)
from webarchive.urls import carried_args

bp = Blueprint("pages", __name__)
HOME_COLUMNS = (
    MailingList.id,
    MailingList.name,
    MailingList.title,
    MailingList.description,
    MailingList.private,
    MailingList.message_count,
    MailingList.thread_count,
    MailingList.last_activity,
)
PAGE_SIZE = 50
T = TypeVar("T")


class PageConstants(NamedTuple):
    """What every post of one page shares, looked up once per request."""

    cache: FragmentCache  # the posts' tops, for every request of this process
    root: str
    anonymous: bool
    zone: ZoneInfo | None
    now: datetime


def posts_html(
    nodes: list[Node],
    list_address: str,
    mlist: MailingList,
    moderator: bool,
    depth_class: bool = True,
    heading: str = "h2",
) -> list[bodies.Page]:
    """A page's posts in order, one piece each, then the reader's own end.

    The top of each post comes from the cache (the missing ones are rendered together).
    """
    zone = _page_constants().zone
    address = current_address()
    tops = _tops(nodes, list_address, mlist.name, depth_class, heading, address)
    reader = rows_html.Reader.of(
        address is not None,
        csrf_token() if address else "",
        url_for("auth.signin", next=request.full_path),
        moderator,
        zone,
    )
    tombstone, placeholder, owner = macros("pages/_post.html", "tombstone", "placeholder", "owner")
    out: list[bodies.Page] = []
    unread, last = False, len(nodes) - 1
    for i, (node, top) in enumerate(zip(nodes, tops, strict=True)):
        parts: list[str] = []
        if node.new and not unread:
            parts.append('<p id="unread" class="new-note">New since your last visit</p>')
            unread = True
        m = node.message
        if top is None:
            depth = node.depth if depth_class else None
            parts.append(
                tombstone(node, depth, moderator)
                if m.status == PostState.REMOVED
                else placeholder(node, depth)
            )
        else:
            parts.append(top)
            if address is not None and address == m.from_addr:
                parts.append(owner(m, address))
            parts.append(
                rows_html.end_html(
                    node, nodes[i - 1] if i else None, nodes[i + 1] if i < last else None, reader
                )
            )
        out.append(bodies.Page("".join(parts)))
    return out


def _tops(
    nodes: list[Node],
    list_address: str,
    list_name: str,
    depth_class: bool,
    heading: str,
    address: str | None,
) -> list[Markup | None]:
    """The part of each visible post the same for every reader of one kind (None for the others).

    Cached: archived posts change seldom, long threads are read often. The posts missing from the
    cache get their attachments in one query and are rendered; the others need neither.
    """
    cache, root, anon, zone, now = _page_constants()
    tops: list[Markup | None] = []
    missing: dict[int, tuple[object, ...]] = {}  # index of a post not in the cache -> its key
    for i, n in enumerate(nodes):
        m, parent = n.message, n.parent
        if m.status != PostState.VISIBLE:
            tops.append(None)
            continue
        # A post's date and the sender's offset never change: how long ago it was, and the zone, do.
        key: tuple[object, ...] = (
            m.id,
            m.message_id,
            root,
            anon,
            address is not None,
            n.depth if depth_class else None,
            heading,
            clock.ago(m.date, now),
            zone,
            parent.id if parent else None,
            parent.status if parent else None,
            list_address,
            list_name,
            n.number,
            n.parent_number,
            n.reported,
            m.edited_at,
        )
        tops.append(cache.get(key))
        if tops[-1] is None:
            missing[i] = key
    if missing:
        fill_attachments(db(), [nodes[i] for i in missing])
        (top,) = macros("pages/_post.html", "top")
        for i, key in missing.items():
            n = nodes[i]
            depth = n.depth if depth_class else None
            when = clock.time_html(n.message.date, n.message.date_offset, zone, now)
            html = Markup(top(n, list_address, list_name, depth, heading, when, address))
            tops[i] = html
            cache.put(key, html)
    return tops


def _page_constants() -> PageConstants:
    """What every post of one page shares, looked up once per request."""
    if "_page_constants" not in g:
        g._page_constants = PageConstants(
            resources().extra.setdefault("post_tops", FragmentCache(8192)),
            request.script_root,
            anonymous(),
            reader_zone(),
            request_now(),
        )
    return g._page_constants


@bp.get("/")
def home() -> str:
    """The lists with their counts and last activity."""
    session = db()
    rows = session.execute(select(*HOME_COLUMNS).order_by(MailingList.name)).all()
    if any(r.private for r in rows):  # only then does who is asking matter
        allowed = readable_list_ids(session)
        rows = [r for r in rows if allowed is None or r.id in allowed]
    return render_template("pages/home.html", lists=rows, domain=settings().domain)


@bp.get("/lists/<name>/")
def list_page(name: str) -> str:
    """A list's threads by last activity, featured ones pinned on the first page."""
    session = db()
    mlist = readable_list(session, name)
    cursor = request.args.get("after") or None
    try:
        rows, nxt = listing.thread_rows(session, mlist, PAGE_SIZE, cursor, featured=False)
    except BadCursor as exc:
        abort(400, description=str(exc))
    featured = [] if cursor else listing.thread_rows(session, mlist, 100, None, featured=True)[0]
    anon, zone = anonymous(), reader_zone()
    return render_template(
        "pages/list.html",
        mlist=mlist,
        threads=rows_html.threads_html(rows, anon, zone),
        featured=rows_html.threads_html(featured, anon, zone) if featured else "",
        next_cursor=nxt,
        paged=cursor is not None,
        domain=settings().domain,
        moderator=is_moderator(mlist),
        following=_following_list(session, mlist),
    )


def _following_list(session: Session, mlist: MailingList) -> bool:
    address = current_address()
    return (
        address is not None
        and session.scalar(
            select(Subscription.id)
            .where(
                Subscription.list_id == mlist.id,
                Subscription.address == address,
                Subscription.status == SubscriptionState.ACTIVE,
                Subscription.kind.in_((SubscriptionKind.LIST, SubscriptionKind.DIGEST)),
                Subscription.thread_key == 0,
            )
            .limit(1)
        )
        is not None
    )


@bp.get("/threads/<int:thread_id>")
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
    # The threads around this one move only when the list gets a post.
    newer, older = _remembered(
        "neighbours",
        (found.id, mlist.thread_count, mlist.message_count, mlist.last_activity),
        lambda: visits.neighbours(session, found),
    )
    return _posts_page(
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
        following=_thread_state(session, found),
        last_visit=last_visit,
        new_count=sum(n.new for n in nodes),
    )


def _posts_page(
    template: str, found: Thread, shown: list[Node], tree: bool, heading: str = "h2", /, **page: Any
) -> str:
    """A page of a thread's posts (the thread's, a message's): what both show, then page."""
    mlist = found.mailing_list
    list_address, moderator = mlist.address(settings().domain), is_moderator(mlist)
    return render_template(
        template,
        thread=found,
        mlist=mlist,
        font=font_choice(),
        list_address=list_address,
        moderator=moderator,
        articles=posts_html(shown, list_address, mlist, moderator, tree, heading),
        **page,
    )


def _remembered(kind: str, key: Hashable, make: Callable[[], T]) -> T:
    """A per-process answer kept under key (up to 4,096 of each kind, all forgotten when full)."""
    cache = resources().extra.setdefault(kind, {})
    if key not in cache:
        if len(cache) >= 4096:
            cache.clear()
        cache[key] = make()
    return cache[key]


def _outline(found: Thread, nodes: list[Node]) -> Markup:
    """The thread's outline: one for each kind of reader until the thread or the minute changes."""
    now = request_now()
    if any(n.new for n in nodes):
        return rows_html.outline_html(nodes, anonymous(), reader_zone(), now)
    recent = now - found.last_activity < clock.RECENT  # "3 minutes ago" moves with the clock
    key = (
        found.id,
        len(nodes),
        found.message_count,
        found.last_activity,
        anonymous(),
        reader_zone_name(),
        now.replace(second=0, microsecond=0) if recent else None,
        [n.message.status for n in nodes].count(PostState.VISIBLE),
    )
    return _remembered(
        "outlines", key, lambda: rows_html.outline_html(nodes, anonymous(), reader_zone(), now)
    )


_THREAD_STATE = select(Subscription.kind, Subscription.status).where(
    Subscription.list_id == bindparam("list_id"),
    Subscription.address == bindparam("address"),
    Subscription.status.in_((SubscriptionState.ACTIVE, SubscriptionState.AWAITING)),
    or_(
        Subscription.thread_key == bindparam("thread_id"),
        Subscription.kind == SubscriptionKind.LIST,
    ),
)


def _thread_state(session: Session, thread: Thread) -> str:
    """What the signed-in person gets of this thread.

    following, muted, awaiting, member (of the whole list) or ''.
    """
    address = current_address()
    if address is None:
        return ""
    rows = dict(
        session.execute(
            _THREAD_STATE, {"list_id": thread.list_id, "address": address, "thread_id": thread.id}
        ).all()
    )
    if rows.get(SubscriptionKind.MUTE) == SubscriptionState.ACTIVE:
        return "muted"
    if rows.get(SubscriptionKind.THREAD) == SubscriptionState.ACTIVE:
        return "following"
    if rows.get(SubscriptionKind.LIST) == SubscriptionState.ACTIVE:
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


@bp.get("/messages/<int:message_pk>")
def message(message_pk: int) -> str:
    """One message by its archive number."""
    session = db()
    return _single(session, readable_message(session, message_pk))


def _single(session: Session, msg: Message) -> str:
    found = readable_thread(session, msg.thread_id)
    node = Node(msg)
    fill_nodes(session, [node], current_address())
    return _posts_page("pages/message.html", found, [node], False, "h1", node=node)


@bp.get("/lists/<name>/authors/<int:message_pk>")
def author(name: str, message_pk: int) -> str:
    """Every post on a list by the author of one message (the URL never holds the address)."""
    session = db()
    mlist = readable_list(session, name)
    sample = readable_message(session, message_pk)
    if sample.list_id != mlist.id:
        abort(404)
    query = select(Message).where(
        Message.list_id == mlist.id,
        Message.status == PostState.VISIBLE,
        Message.from_addr == sample.from_addr,
    )
    cursor = request.args.get("before")
    if cursor:
        try:
            at, pk = decode_cursor(cursor)
        except BadCursor as exc:
            abort(400, description=str(exc))
        query = query.where(or_(Message.date < at, and_(Message.date == at, Message.id < pk)))
    rows = list(
        session.scalars(query.order_by(Message.date.desc(), Message.id.desc()).limit(PAGE_SIZE + 1))
    )
    nxt = (
        encode_cursor(rows[PAGE_SIZE - 1].date, rows[PAGE_SIZE - 1].id)
        if len(rows) > PAGE_SIZE
        else None
    )
    return render_template(
        "pages/author.html",
        mlist=mlist,
        sample=sample,
        messages=rows[:PAGE_SIZE],
        next_cursor=nxt,
        correspondents=talk.correspondents(session, mlist.id, sample.from_addr)
        if not cursor
        else [],
    )


@bp.get("/lists/<name>/months")
def months(name: str) -> str:
    """The months a list has posts in, with counts."""
    session = db()
    mlist = readable_list(session, name)
    # Counting a big list's months reads all its posts: keep the answer until the list changes.
    cache = resources().extra.setdefault("months", {})
    key = (mlist.id, mlist.message_count, mlist.last_activity)
    if cache.get(mlist.id, (None,))[0] != key:
        year, month = extract("year", Message.date), extract("month", Message.date)
        rows = session.execute(
            select(year, month, func.count())
            .where(Message.list_id == mlist.id, Message.status == PostState.VISIBLE)
            .group_by(year, month)
            .order_by(year.desc(), month.desc())
        ).all()
        cache[mlist.id] = (key, [(int(y), int(m), n) for y, m, n in rows])
    return render_template("pages/months.html", mlist=mlist, months=cache[mlist.id][1])


@bp.get("/lists/<name>/<int:year>/<int:month>")
def month(name: str, year: int, month: int) -> str:
    """A list's posts in one month, by date."""
    session = db()
    mlist = readable_list(session, name)
    start, end = month_range(year, month)
    rows = listing.month_rows(session, mlist, start, end)
    return render_template(
        "pages/month.html",
        mlist=mlist,
        rows=rows_html.month_html(rows, anonymous(), reader_zone()),
        count=len(rows),
        year=year,
        month=month,
        start=start,
    )
