"""Long listings (a list's threads, a month's posts) as plain rows of only the columns shown.

A page of 50 threads or a month of 1,000 posts spent most of its time building ORM objects;
webarchive.rendering.rows renders these rows in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVarTuple

from flask import abort
from sqlalchemy import Row, Select, String, and_, or_, select, type_coerce
from sqlalchemy.orm import Session

from listgate.models import MailingList, Message, Thread
from listgate.states import PostState
from webarchive.reading.threads import decode_cursor, encode_cursor

THREAD_COLUMNS = (
    Thread.id,
    Thread.subject,
    Thread.starter_name,
    Thread.message_count,
    Thread.participant_count,
    Thread.last_activity,
    Thread.featured,
)
ThreadRow = Row[int, str, str, int, int, datetime, bool]  # THREAD_COLUMNS
# (id, thread_id, subject, from_name, date as stored): text on SQLite, but PostgreSQL's driver
# gives a datetime whatever the column is coerced to (rendering.rows reads both).
MonthRow = Row[int, int, str, str, Any]
Ts = TypeVarTuple("Ts")


def thread_rows(
    session: Session, mlist: MailingList, limit: int, cursor: str | None, featured: bool
) -> tuple[Sequence[ThreadRow], str | None]:
    """Rows of THREAD_COLUMNS by last activity (newest first) after cursor, and the next cursor."""
    query = select(*THREAD_COLUMNS).where(
        Thread.list_id == mlist.id,
        Thread.merged_into_id.is_(None),
        Thread.message_count > 0,
        Thread.featured == featured,  # "= 1" (not "IS 1"): the partial index of featured applies
    )
    if cursor:
        when, pk = decode_cursor(cursor)
        query = query.where(
            or_(Thread.last_activity < when, and_(Thread.last_activity == when, Thread.id < pk))
        )
    rows = session.execute(
        query.order_by(Thread.last_activity.desc(), Thread.id.desc()).limit(limit + 1)
    ).all()
    nxt = (
        encode_cursor(rows[limit - 1].last_activity, rows[limit - 1].id)
        if len(rows) > limit
        else None
    )
    return rows[:limit], nxt


def month_rows(
    session: Session, mlist: MailingList, start: datetime, end: datetime
) -> Sequence[MonthRow]:
    """MonthRow of each of a list's visible posts in [start, end), by date."""
    # a month holds thousands: parsed by rendering.rows, not by per-row type code
    raw_date = type_coerce(Message.date, String)
    columns = select(Message.id, Message.thread_id, Message.subject, Message.from_name, raw_date)
    return session.execute(_in_month(columns, mlist, start, end)).all()


def month_posts(
    session: Session, mlist: MailingList, start: datetime, end: datetime
) -> list[Message]:
    """A list's visible posts in [start, end), by date: the posts month_rows lists."""
    return list(session.scalars(_in_month(select(Message), mlist, start, end)))


def _in_month(
    query: Select[*Ts], mlist: MailingList, start: datetime, end: datetime
) -> Select[*Ts]:
    """query narrowed to a list's visible posts dated in [start, end), ordered by date."""
    return query.where(
        Message.list_id == mlist.id,
        Message.date >= start,
        Message.date < end,
        Message.status == PostState.VISIBLE,
    ).order_by(Message.date, Message.id)


def month_range(year: int, month: int) -> tuple[datetime, datetime]:
    """[start, end) of a month in UTC, or 404 for an impossible month."""
    if not (1 <= month <= 12 and 1970 <= year <= 9998):
        abort(404)
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end
