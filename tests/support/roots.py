"""The Thread model's root, date and count invariants (listgate.models.Thread), checked against
a list's rows: the threading property tests and models, the merge tests and the migration tests
read the same ones.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate.models import MailingList, Message, Thread
from listgate.states import PostState

# a start hidden or removed since stays the root (its tombstone keeps its place)
PUBLISHED = {PostState.VISIBLE, PostState.HIDDEN, PostState.REMOVED}


def problems(session: Session, list_id: int) -> list[str]:
    """What breaks the invariants on this list (empty when they hold), one line per thread."""
    rows = session.execute(
        select(
            Message.id, Message.thread_id, Message.parent_id, Message.status, Message.date
        ).where(Message.list_id == list_id)
    ).all()
    by_pk = {r.id: r for r in rows}
    visible = Counter(r.thread_id for r in rows if r.status == PostState.VISIBLE)
    dates: dict[int, list[datetime]] = {}
    for r in rows:
        if r.status == PostState.VISIBLE:
            dates.setdefault(r.thread_id, []).append(r.date)
    tops = {r.thread_id for r in rows if r.status == PostState.VISIBLE and r.parent_id is None}
    holding = {r.thread_id for r in rows}
    out: list[str] = []
    live = 0
    for t in session.scalars(select(Thread).where(Thread.list_id == list_id)):
        root = by_pk.get(t.root_message_pk) if t.root_message_pk is not None else None
        if t.merged_into_id is not None:
            if t.root_message_pk is not None or t.message_count or t.id in holding:
                out.append(
                    f"merged-away thread {t.id}: root {t.root_message_pk}, "
                    f"{t.message_count} counted, holds messages: {t.id in holding}"
                )
            continue
        live += bool(visible[t.id])
        if t.message_count != visible[t.id]:
            out.append(f"thread {t.id}: {t.message_count} counted, {visible[t.id]} visible")
        if not visible[t.id]:
            continue
        shown = (min(dates[t.id]), max(dates[t.id]))
        if (t.created_at, t.last_activity) != shown:
            out.append(
                f"thread {t.id}: dated {t.created_at} to {t.last_activity}, "
                f"its visible posts {shown[0]} to {shown[1]}"
            )
        if (
            root is None
            or root.thread_id != t.id
            or root.status not in PUBLISHED
            or (t.id in tops and root.parent_id is not None)
        ):
            where = "none" if root is None else f"{root.id} ({root.status}, thread {root.thread_id}"
            where += "" if root is None else f", parent {root.parent_id})"
            out.append(f"thread {t.id}: root {where} is not a visible start of its own")
    thread_count = session.get_one(MailingList, list_id).thread_count
    if thread_count != live:
        out.append(f"list counts {thread_count} threads, {live} live threads have visible posts")
    return out
