"""What the thread page reads around the posts: the threads before and after, the last visit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, and_, bindparam, or_, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import store
from listgate.db import transaction
from listgate.models import ReadMark, Thread
from listgate.models.archive import utcnow
from webarchive.reading.threads import Node


def neighbours(
    session: Session, thread: Thread
) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
    """(newer, older) threads of the list by last activity, as (id, subject); None at either end."""
    base = select(Thread.id, Thread.subject).where(
        Thread.list_id == thread.list_id,
        Thread.merged_into_id.is_(None),
        Thread.message_count > 0,
        Thread.id != thread.id,
    )
    at, pk = thread.last_activity, thread.id
    newer = session.execute(
        base.where(or_(Thread.last_activity > at, and_(Thread.last_activity == at, Thread.id > pk)))
        .order_by(Thread.last_activity, Thread.id)
        .limit(1)
    ).first()
    older = session.execute(
        base.where(or_(Thread.last_activity < at, and_(Thread.last_activity == at, Thread.id < pk)))
        .order_by(Thread.last_activity.desc(), Thread.id.desc())
        .limit(1)
    ).first()
    return (_pair(newer) if newer else None), (_pair(older) if older else None)


def _pair(row: Row[int, str]) -> tuple[int, str]:
    """A plain (id, subject) to keep between requests."""
    pk, subject = row
    return pk, subject


_MARK = select(ReadMark.last_seen_pk, ReadMark.visited_at).where(
    ReadMark.address == bindparam("address"), ReadMark.thread_id == bindparam("thread_id")
)


def visit(
    reader: Session, writer: sessionmaker[Session], address: str, thread_id: int, nodes: list[Node]
) -> datetime | None:
    """Mark posts newer than the reader's last visit as new and remember this visit.

    The last visit's time, or None.
    """
    mark = reader.execute(_MARK, {"address": address, "thread_id": thread_id}).first()
    newest = max((n.message.id for n in nodes), default=0)
    if mark is not None:
        for n in nodes:
            n.new = n.message.id > mark.last_seen_pk and not n.hidden
        if newest <= mark.last_seen_pk:
            return mark.visited_at
    with transaction(writer) as session:
        stmt = (
            store.of(session)
            .insert(ReadMark)
            .values(address=address, thread_id=thread_id, last_seen_pk=newest, visited_at=utcnow())
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[ReadMark.address, ReadMark.thread_id],
                set_={"last_seen_pk": newest, "visited_at": utcnow()},
            )
        )
    return mark.visited_at if mark is not None else None
