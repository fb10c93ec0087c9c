"""The pages that list: the lists, a list's threads, its months, a month's posts, an author's."""

from __future__ import annotations

from flask import abort, render_template, request
from sqlalchemy import and_, extract, func, or_, select
from sqlalchemy.orm import Session

from listgate.models import MailingList, Message, Subscription
from listgate.states import PostState, SubscriptionKind, SubscriptionState
from webarchive.context import db, list_version, remembered, settings
from webarchive.reading import listing, talk
from webarchive.reading.access import (
    is_moderator,
    readable_list,
    readable_list_ids,
    readable_message,
)
from webarchive.reading.listing import month_range
from webarchive.reading.threads import BadCursor, decode_cursor, encode_cursor
from webarchive.rendering import rows as rows_html
from webarchive.security import current_address
from webarchive.templating import anonymous, reader_zone
from webarchive.views.pages.blueprint import bp

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


@bp.get("/lists/<name>/authors/<id:message_pk>")
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
    found = remembered("months", mlist.id, list_version(mlist), lambda: _months(session, mlist))
    return render_template("pages/months.html", mlist=mlist, months=found)


def _months(session: Session, mlist: MailingList) -> list[tuple[int, int, int]]:
    """(year, month, visible posts) of each month the list has posts in, newest first."""
    year, month = extract("year", Message.date), extract("month", Message.date)
    rows = session.execute(
        select(year, month, func.count())
        .where(Message.list_id == mlist.id, Message.status == PostState.VISIBLE)
        .group_by(year, month)
        .order_by(year.desc(), month.desc())
    ).all()
    return [(int(y), int(m), n) for y, m, n in rows]


@bp.get("/lists/<name>/<number(most=9998):year>/<number(most=12, zeros=True):month>")
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
