"""A post taken off the archive (hidden, removed) or put back (restored): its thread's and list's
counts, dates, root and participants move with it, in the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from listgate import conversations, participants
from listgate.models import MailingList, Message, Thread
from listgate.states import PostState
from listgate.store import lock_list, table

_MESSAGES = table(Message)
_THREADS = table(Thread)
# In SQL, so that concurrent writers never lose a step (PostgreSQL also holds the list's lock).
_CHANGED = MailingList.changes + 1


def count_step(session: Session, msg: Message, step: int) -> None:
    """A post leaves (-1) or comes back to (+1) the archive: its thread's and list's counts move
    (its author stops or starts again taking part in the thread when it is their only visible
    post there), and a thread with no visible post left stops being one of the list's threads.

    Called before any other write of the caller's transaction: the list lock comes first, as in
    the archiver's batches (which read a thread's counts after it and write them at their flush),
    so a takedown waits for a batch instead of being overwritten by it or deadlocking with it.
    """
    lock_list(session, session.get_one(MailingList, msg.list_id))
    people = participants.step(session, msg, step)
    left = session.execute(
        update(Thread)
        .where(Thread.id == msg.thread_id)
        .values(
            message_count=Thread.message_count + step,
            participant_count=Thread.participant_count + people,
        )
        .returning(Thread.message_count)
    ).scalar()
    threads = -1 if step < 0 and left == 0 else 1 if step > 0 and left == 1 else 0
    session.execute(
        update(MailingList)
        .where(MailingList.id == msg.list_id)
        .values(
            message_count=MailingList.message_count + step,
            thread_count=MailingList.thread_count + threads,
            changes=_CHANGED,
        )
    )
    thread = _settle(session, msg, step)
    _list_activity(session, thread, msg, step, shown=bool(left))


def _settle(session: Session, msg: Message, step: int) -> Thread:
    """The thread's dates from its visible posts and its root chosen again if it is no start,
    the post that is leaving (-1) or coming back (+1) counted as it will be (count_step's change
    of the list covers them)."""
    visible = _MESSAGES.c.status == PostState.VISIBLE
    shown = (
        visible & (_MESSAGES.c.id != msg.id) if step < 0 else visible | (_MESSAGES.c.id == msg.id)
    )
    thread = conversations.get(session, msg.thread_id)
    first, last = (
        session.connection()
        .execute(
            select(func.min(_MESSAGES.c.date), func.max(_MESSAGES.c.date)).where(
                _MESSAGES.c.thread_id == thread.id, shown
            )
        )
        .one()
    )
    values = conversations.root_choice(session, thread, shown) or {}
    if first is not None:  # a thread with no visible post is no thread of the list: dates kept
        values.update(created_at=first, last_activity=last)
    for name, value in values.items():
        if name not in ("message_count", "participant_count") and getattr(thread, name) != value:
            setattr(thread, name, value)
    return thread


def _list_activity(session: Session, thread: Thread, msg: Message, step: int, shown: bool) -> None:
    """The list's last activity after a post left (-1) or came back (+1): its latest visible
    post's date (its threads' latest last activity), none when it shows nothing. `shown`: the
    thread still shows a post (its count as the UPDATE returned it)."""
    mlist = session.get_one(MailingList, msg.list_id)
    if step > 0:
        if mlist.last_activity is None or msg.date > mlist.last_activity:
            mlist.last_activity = msg.date
        return
    if mlist.last_activity is not None and msg.date < mlist.last_activity:
        return  # a later post is still shown
    others = (
        session.connection()
        .execute(
            select(func.max(_THREADS.c.last_activity)).where(
                _THREADS.c.list_id == mlist.id,
                _THREADS.c.merged_into_id.is_(None),
                _THREADS.c.message_count > 0,
                _THREADS.c.id != thread.id,
            )
        )
        .scalar()
    )
    dates = [d for d in (others, thread.last_activity if shown else None) if d]
    mlist.last_activity = max(dates, default=None)
