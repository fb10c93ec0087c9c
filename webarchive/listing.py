"""Long listings (a list's threads, a month's posts) as plain rows rendered in one pass.

A page of 50 threads or a month of 1,000 posts spent most of its time building ORM objects
and calling a template macro, url_for and filters per row; these read only the columns
shown and render each row with one format string.
"""

from __future__ import annotations

from datetime import datetime, timezone

from markupsafe import Markup, escape
from sqlalchemy import String, and_, or_, select, type_coerce
from sqlalchemy.orm import Session

from listgate.models import MailingList, Message, Thread
from listgate.states import PostState
from webarchive.queries import decode_cursor, encode_cursor
from webarchive.clock import local
from webarchive.render import display_name

THREAD_COLUMNS = (Thread.id, Thread.subject, Thread.starter_name, Thread.message_count, Thread.participant_count,
                  Thread.last_activity, Thread.featured)
_THREAD_ROW = ('<li{cls}>\n  {badge}\n  <h2><a href="{root}/threads/{id}">{subject}</a></h2>\n'
               '  <p class="meta">started by {name} · {posts} post{ps} · {people} participant{pps} · last activity '
               '<time datetime="{iso}">{human}</time></p>\n</li>\n')
_MONTH_ROW = ('<tr><td><a href="{root}/threads/{tid}#m{id}">{subject}</a></td><td>{name}</td>'
              '<td><time datetime="{iso}">{human}</time></td></tr>\n')


def thread_rows(session: Session, mlist: MailingList, limit: int, cursor: str | None,
                featured: bool) -> tuple[list, str | None]:  # type: ignore[type-arg]
    """Rows of THREAD_COLUMNS by last activity (newest first) after cursor, and the next cursor."""
    query = select(*THREAD_COLUMNS).where(
        Thread.list_id == mlist.id, Thread.merged_into_id.is_(None), Thread.message_count > 0,
        Thread.featured == featured)  # "= 1" (not "IS 1"): the partial index of featured threads applies
    if cursor:
        when, pk = decode_cursor(cursor)
        query = query.where(or_(Thread.last_activity < when, and_(Thread.last_activity == when, Thread.id < pk)))
    rows = session.execute(query.order_by(Thread.last_activity.desc(), Thread.id.desc()).limit(limit + 1)).all()
    nxt = encode_cursor(rows[limit - 1].last_activity, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], nxt


def threads_html(rows: list, root: str, anonymous: bool, tz=None) -> Markup:  # type: ignore[type-arg, no-untyped-def]
    """The <li> of each thread row, dates in the reader's zone tz (UTC when None)."""
    out = []
    for r in rows:
        out.append(_THREAD_ROW.format(
            cls=' class="featured"' if r.featured else "",
            badge='<p class="badge">This is a featured thread</p>' if r.featured else "",
            root=root, id=r.id, subject=escape(r.subject or "(no subject)"),
            name=escape(display_name(r.starter_name, anonymous)), posts=r.message_count,
            ps="" if r.message_count == 1 else "s", people=r.participant_count,
            pps="" if r.participant_count == 1 else "s", iso=r.last_activity.isoformat(),
            human=local(r.last_activity, tz)))
    return Markup("".join(out))


def month_rows(session: Session, mlist: MailingList, start: datetime, end: datetime) -> list:  # type: ignore[type-arg]
    """(id, thread_id, subject, from_name, date as stored) of a list's visible posts in [start, end), by date."""
    raw_date = type_coerce(Message.date, String)  # a month holds thousands: parsed by _aware, not per-row type code
    return session.execute(select(Message.id, Message.thread_id, Message.subject, Message.from_name, raw_date)
                           .where(Message.list_id == mlist.id, Message.date >= start, Message.date < end,
                                  Message.status == PostState.VISIBLE)
                           .order_by(Message.date, Message.id)).all()


def month_html(rows: list, root: str, anonymous: bool, tz=None) -> Markup:  # type: ignore[type-arg, no-untyped-def]
    """The <tr> of each post of a month, dates in the reader's zone tz (UTC when None)."""
    names: dict[str, str] = {}
    out = []
    fmt = _MONTH_ROW.format
    for pk, thread_id, subject, from_name, stored in rows:
        name = names.get(from_name)
        if name is None:
            name = names[from_name] = str(escape(display_name(from_name, anonymous)))
        when = _aware(stored)
        out.append(fmt(root=root, tid=thread_id, id=pk, subject=escape(subject or "(no subject)"), name=name,
                       iso=when.isoformat(), human=local(when, tz)))
    return Markup("".join(out))


def _aware(value: datetime | str) -> datetime:
    """A stored date as aware UTC (SQLite keeps naive UTC text, PostgreSQL gives aware datetimes)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
