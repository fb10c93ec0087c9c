"""Thread rows: created, merged, split when a subject link moves, counted, resolved through
redirects.

A list counts only threads with a published post: a thread becomes one of the list's threads
with its first visible post and stops being one when it has none left (held, rejected, hidden
or removed posts are no threads). Counts are set on the Thread objects and written by the
session's flush, once per thread however many posts a batch adds (ingest runs without autoflush;
merges and moves flush first); objects a transaction touched are held strongly (the identity map
only holds weak references) and dropped on any rollback.

Who takes part in a thread is listgate.participants'; a post taken down or put back moves the
counts through listgate.takedowns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, event, func, insert, inspect, select, update
from sqlalchemy.orm import Session, lazyload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from listgate import followers, participants, places, store
from listgate.models import MailingList, Message, ReadMark, Subscription, Thread, ThreadNode
from listgate.models.archive import utcnow
from listgate.states import PostState, SubscriptionKind, SubscriptionState
from listgate.store import lock_list, table

_MESSAGES = table(Message)
_THREADS = table(Thread)
_NODES = table(ThreadNode)
_SUBS = table(Subscription)
_COUNTED = (
    "message_count",
    "last_activity",
    "root_message_pk",
    "subject",
    "subject_norm",
    "starter_name",
    "created_at",
    "participant_count",
)
# With the batch's others (listgate.places.insert_rows), its id taken ahead (store.new_thread_id)
_NEW_THREAD = store.apart(insert(_THREADS))
# In SQL, so that concurrent writers never lose a step (PostgreSQL also holds the list's lock).
_CHANGED = MailingList.changes + 1
# a written row's (_has_parent looks at a waiting row first)
_PARENT_OF = store.apart(select(_MESSAGES.c.parent_id).where(_MESSAGES.c.id == bindparam("pk")))
# A post once shown: a start taken down later keeps its place as the thread's root (its tombstone).
_PUBLISHED = frozenset({PostState.VISIBLE, PostState.HIDDEN, PostState.REMOVED})
_ROOT = store.blind(
    select(_MESSAGES.c.parent_id, _MESSAGES.c.thread_id, _MESSAGES.c.status).where(
        _MESSAGES.c.id == bindparam("pk")
    )
)
# the archiver's look-ahead reads participants through this module (listgate.ingest)
learn_participants = participants.learn


def _threads(session: Session) -> dict[int, Thread]:
    """Threads this transaction loaded or wrote; any rollback (a savepoint's too) empties it
    (listgate.store.tx)."""
    return store.tx(session).threads


_NOT_ITS_LIST = (lazyload(Thread.mailing_list),)
_APART = {store.BLIND: True, store.APART: True}
_LOAD_CHUNK = 1000  # ids per IN list


def get(session: Session, thread_id: int) -> Thread:
    """The thread (kept for the rest of the transaction), without joining its list."""
    cache = _threads(session)
    thread = cache.get(thread_id)
    if thread is None:
        thread = cache[thread_id] = session.get_one(
            Thread, thread_id, options=_NOT_ITS_LIST, execution_options=_APART
        )
    return thread


def load(session: Session, thread_ids: Iterable[int]) -> None:
    """Read the threads this transaction has not (a batch's replies join them) in one query,
    for `get` to find: not one look-up each."""
    cache = _threads(session)
    wanted = [t for t in dict.fromkeys(thread_ids) if t not in cache]
    for start in range(0, len(wanted), _LOAD_CHUNK):
        chunk = wanted[start : start + _LOAD_CHUNK]
        query = select(Thread).where(Thread.id.in_(chunk)).options(*_NOT_ITS_LIST)
        for thread in session.scalars(query, execution_options=_APART):
            cache[thread.id] = thread


def new(session: Session, draft: Any) -> Thread:
    """A thread started by draft: its row goes in with the batch's others (written before the rows
    that name it); tracked by the session without a SELECT."""
    values = {
        "list_id": draft.list_id,
        "subject": draft.subject,
        "subject_norm": draft.subject_norm,
        "starter_name": draft.from_name,
        "created_at": draft.date,
        "last_activity": draft.date,
        "root_message_pk": None,
        "message_count": 0,
        "participant_count": 0,
        "merged_into_id": None,
        "featured": False,
    }
    thread = Thread(id=store.new_thread_id(session), **values)
    places.insert_rows(session.connection(), _NEW_THREAD, [{"id": thread.id, **values}])
    if not event.contains(session, "before_flush", _into_waiting_rows):
        event.listen(session, "before_flush", _into_waiting_rows)
    store.tx(session).new_threads.add(thread.id)  # no participant yet
    make_transient_to_detached(thread)
    session.add(thread)
    _threads(session)[thread.id] = thread
    return thread


def _into_waiting_rows(session: Session, *_: Any) -> None:
    """Before a flush: a thread whose row still waits to go in with the batch's others
    (listgate.places) takes the counts, dates and root set on it since into that row, and the
    flush has nothing to UPDATE for it (a new thread's first posts changed every one of them:
    one UPDATE row per new thread). Rows already written are updated by the flush as before."""
    waiting = places.waiting(session.connection(), _THREADS.name)
    if not waiting:
        return
    cache = _threads(session)
    for row in waiting:
        thread = cache.get(row["id"])
        if thread is None:
            continue
        state = inspect(thread)
        for key in [k for k in state.committed_state if k in row and k in state.dict]:
            value = state.dict[key]
            row[key] = value
            set_committed_value(thread, key, value)


def merge(session: Session, thread_ids: Iterable[int], prefer: int | None = None) -> Thread:
    """Merge threads into the largest (or `prefer`); the others redirect to it."""
    threads = [get(session, t) for t in dict.fromkeys(thread_ids)]
    if len(threads) == 1:
        return threads[0]
    session.flush()  # the statements below work on rows: write what the session holds first
    places.forget(session)
    survivor = next((t for t in threads if t.id == prefer), None) or max(
        threads, key=lambda t: (t.message_count, -t.id)
    )
    # threads with no published post are not counted, nor do their (held) posts date the survivor
    shown = [t for t in threads if t.message_count > 0]
    first = min(t.created_at for t in shown or threads)
    last = max(t.last_activity for t in shown or threads)
    for other in threads:
        if other.id == survivor.id:
            continue
        for model, column in ((Message, Message.thread_id), (ThreadNode, ThreadNode.thread_id)):
            session.execute(update(model).where(column == other.id).values(thread_id=survivor.id))
        followers.move(session, other.id, survivor.id)
        _join_read_marks(session, other.id, survivor.id, absorbed=True)
        participants.move(session, other.id, survivor.id)
        session.execute(
            update(Thread)
            .where(Thread.merged_into_id == other.id)
            .values(merged_into_id=survivor.id)
        )
        survivor.message_count += other.message_count
        if _start(other) < _start(survivor):
            survivor.subject = other.subject
            survivor.subject_norm, survivor.starter_name = other.subject_norm, other.starter_name
            survivor.root_message_pk = other.root_message_pk
        survivor.featured = survivor.featured or other.featured
        # a merged-away thread starts nothing: its root now lies in the survivor
        other.merged_into_id, other.message_count, other.root_message_pk = survivor.id, 0, None
    survivor.created_at, survivor.last_activity = first, last
    changed(session, survivor.list_id)
    fix_root(session, survivor)
    survivor.mailing_list.thread_count -= len(shown) - (1 if survivor.message_count > 0 else 0)
    session.flush()
    session.refresh(survivor, ["participant_count"])
    return survivor


def move(
    session: Session, message_pks: set[int], msgids: set[str], source: int, target: int
) -> None:
    """Move part of a thread (its messages and nodes) to another thread; both are recounted (and the
    list's threads). The moved posts' authors who follow the source follow the target too: the
    answers to their posts come there now."""
    session.flush()
    places.forget(session)
    conn = session.connection()
    _follow_moved(session, message_pks, source, target)
    _join_read_marks(session, source, target)
    conn.execute(update(_MESSAGES).where(_MESSAGES.c.id.in_(message_pks)).values(thread_id=target))
    conn.execute(
        update(_NODES)
        .where(_NODES.c.thread_id == source, _NODES.c.msgid.in_(msgids))
        .values(thread_id=target)
    )
    for thread_id in (source, target):
        thread = get(session, thread_id)
        counted = thread.message_count > 0
        recount(session, thread)
        session.get_one(MailingList, thread.list_id).thread_count += (
            thread.message_count > 0
        ) - counted


def _follow_moved(session: Session, message_pks: set[int], source: int, target: int) -> None:
    """The authors of the moved posts who follow the source follow the target (as posting there
    would: store.auto_follow, which leaves alone one who mutes it or turned following off)."""
    authors = (
        select(_MESSAGES.c.list_id, _MESSAGES.c.from_addr)
        .where(_MESSAGES.c.id.in_(message_pks), _MESSAGES.c.status == PostState.VISIBLE)
        .distinct()
        .subquery()
    )
    following = (
        session.connection()
        .execute(
            select(_SUBS.c.list_id, _SUBS.c.address)
            .join(
                authors,
                (_SUBS.c.list_id == authors.c.list_id) & (_SUBS.c.address == authors.c.from_addr),
            )
            .where(
                _SUBS.c.kind == SubscriptionKind.THREAD,
                _SUBS.c.thread_key == source,
                _SUBS.c.status == SubscriptionState.ACTIVE,
            )
        )
        .all()
    )
    if not following:
        return
    now = utcnow()
    places.insert_rows(
        session.connection(),
        store.of(session).auto_follow,
        [
            {
                "list_id": list_id,
                "address": address,
                "kind": SubscriptionKind.THREAD,
                "thread_key": target,
                "status": SubscriptionState.ACTIVE,
                "now": now,
            }
            for list_id, address in following
        ],
    )


def split(session: Session, message_pks: set[int], msgids: set[str], source: int) -> int:
    """Part of a thread that nothing joins to the rest any more becomes a thread of its own; its
    id."""
    first = (
        session.connection()
        .execute(
            select(
                _MESSAGES.c.list_id,
                _MESSAGES.c.subject,
                _MESSAGES.c.subject_norm,
                _MESSAGES.c.from_name,
                _MESSAGES.c.date,
            )
            .where(_MESSAGES.c.id.in_(message_pks))
            .order_by(_MESSAGES.c.date, _MESSAGES.c.id)
            .limit(1)
        )
        .one()
    )
    thread = new(session, first)
    # counted among the list's threads if a post moved
    move(session, message_pks, msgids, source, thread.id)
    return thread.id


def _start(thread: Thread) -> tuple[bool, Any]:
    """Which of two merging threads gives the survivor its start: one with a visible start before
    one without (only held posts or placeholders), then the older."""
    return thread.root_message_pk is None, thread.created_at


def recount(session: Session, thread: Thread) -> None:
    """Counts, dates, participants and root of a thread from its rows (after a part moved away)."""
    conn = session.connection()
    visible = (
        select(_MESSAGES.c.date)
        .where(_MESSAGES.c.thread_id == thread.id, _MESSAGES.c.status == PostState.VISIBLE)
        .subquery()
    )
    count, first, last = conn.execute(
        select(func.count(), func.min(visible.c.date), func.max(visible.c.date)).select_from(
            visible
        )
    ).one()
    people = participants.rebuild(session, thread.id)
    values = {c: getattr(thread, c) for c in _COUNTED}
    values.update(message_count=count, participant_count=people, root_message_pk=None)
    if count:
        values.update(created_at=first, last_activity=last)
    _write(session, thread, values)
    fix_root(session, thread)


def fix_root(session: Session, thread: Thread) -> None:
    """Make the thread's root its earliest visible message without a parent (else its earliest
    visible message) unless it is a start of its own already (a published message without a
    parent, hidden or removed since or not: listgate.models.Thread); kept when none is visible.
    """
    values = root_choice(session, thread, _MESSAGES.c.status == PostState.VISIBLE)
    if values is not None:
        _write(session, thread, values)


def root_choice(session: Session, thread: Thread, shown: Any) -> dict[str, Any] | None:
    """The thread's values with the root fix_root chooses, None when the root stays; `shown` tells
    which of its messages are visible (a post being hidden or restored counts as it will be)."""
    conn = session.connection()
    root = thread.root_message_pk
    now = None if root is None else conn.execute(_ROOT, {"pk": root}).first()
    if (
        now is not None
        and (now.thread_id, now.parent_id) == (thread.id, None)
        and now.status in _PUBLISHED
    ):
        return None
    row = conn.execute(
        select(
            _MESSAGES.c.id,
            _MESSAGES.c.subject,
            _MESSAGES.c.subject_norm,
            _MESSAGES.c.from_name,
        )
        .where(_MESSAGES.c.thread_id == thread.id, shown)
        .order_by(_MESSAGES.c.parent_id.is_not(None), _MESSAGES.c.date, _MESSAGES.c.message_id)
        .limit(1)
    ).first()
    if row is None:
        return None
    values = {c: getattr(thread, c) for c in _COUNTED}
    values.update(
        root_message_pk=row.id,
        subject=row.subject,
        subject_norm=row.subject_norm,
        starter_name=row.from_name,
    )
    return values


def count_visible(session: Session, thread: Thread, msg: Any) -> None:
    """Count a visible message (a Draft or a Message) in its thread; in the same transaction as the
    message.

    Sets on the thread only what moves (each ORM attribute read or set costs; this runs for
    every message archived).
    """
    count = thread.message_count + 1
    thread.message_count = count
    date = msg.date
    created = thread.created_at
    # Its first published post: only now is it one of the list's threads, and the dates it had
    # came from held posts (the thread was made for one), which are nobody's business yet.
    if count == 1:
        _list(session, thread.list_id).thread_count += 1
        if thread.last_activity != date:
            thread.last_activity = date
        if created != date:
            thread.created_at = date
    else:  # a thread's dates are its visible posts' first and last
        if date > thread.last_activity:
            thread.last_activity = date
        if date < created:
            thread.created_at = date
    root = thread.root_message_pk
    if root is None or (msg.parent_id is None and (date < created or _has_parent(session, root))):
        _write(
            session,
            thread,
            {
                "root_message_pk": msg.id,
                "subject": msg.subject,
                "subject_norm": msg.subject_norm,
                "starter_name": msg.from_name,
            },
        )
    addr = msg.from_addr or msg.from_name
    if addr and participants.joins(session, thread.id, addr):
        thread.participant_count += 1
    changed(session, thread.list_id)  # its count moved


def changed(session: Session, list_id: int) -> None:
    """What the archive shows of the list changes in this transaction: its change counter goes up
    (listgate.models.MailingList.changes), in the UPDATE that writes the list at the next flush.

    Takes the list lock first, as every writer of the list does.
    """
    mlist = _list(session, list_id)
    lock_list(session, mlist)
    if mlist.__dict__.get("changes") is not _CHANGED:  # not marked since the last flush
        mlist.changes = _CHANGED


def _list(session: Session, list_id: int) -> MailingList:
    """The list, looked up once per transaction (each message of a batch changes it)."""
    lists = store.tx(session).lists
    mlist = lists.get(list_id)
    if mlist is None:
        mlist = lists[list_id] = session.get_one(MailingList, list_id)
    return mlist


def _write(session: Session, thread: Thread, values: dict[str, Any]) -> None:
    """Set the thread's counts on the object: the session writes each changed thread once, at
    its next flush (the commit, a savepoint, a merge), however many messages a batch adds.

    A thread's counts, dates, root or subject moving is a change of its list (changed).
    """
    moved = False
    for name, value in values.items():
        if getattr(thread, name) != value:
            setattr(thread, name, value)
            moved = True
    if moved:
        changed(session, thread.list_id)


def _has_parent(session: Session, message_pk: int) -> bool:
    """True when the message was adopted since (a late ancestor arrived): it is no root any more."""
    conn = session.connection()
    unwritten = places.waiting_among(conn, "messages", "id", [message_pk])
    if unwritten:
        return unwritten[0]["parent_id"] is not None
    return conn.execute(_PARENT_OF, {"pk": message_pk}).scalar() is not None


def _join_read_marks(session: Session, old: int, new: int, *, absorbed: bool = False) -> None:
    """Where readers left thread `old` counts on thread `new` too, whose posts now include some of
    old's: one mark per reader and thread, so a reader with both keeps the earlier. Posts read in
    one thread may show as new again; a post never read never hides as read. The marks of an
    `absorbed` thread (merged into new) go.
    """
    old_marks = session.scalars(select(ReadMark).where(ReadMark.thread_id == old)).all()
    if not old_marks:
        return
    marks = {
        m.address: m for m in session.scalars(select(ReadMark).where(ReadMark.thread_id == new))
    }
    for old_mark in old_marks:
        mark = marks.get(old_mark.address)
        if mark is None:
            session.add(
                ReadMark(
                    address=old_mark.address,
                    thread_id=new,
                    last_seen_pk=old_mark.last_seen_pk,
                    visited_at=old_mark.visited_at,
                )
            )
        elif old_mark.last_seen_pk < mark.last_seen_pk:
            mark.last_seen_pk, mark.visited_at = old_mark.last_seen_pk, old_mark.visited_at
        if absorbed:
            session.delete(old_mark)
    session.flush()


def resolve(session: Session, thread_id: int) -> Thread | None:
    """The thread, following merge redirects."""
    thread = session.get(Thread, thread_id)
    for _ in range(100):
        if thread is None or thread.merged_into_id is None:
            return thread
        thread = session.get(Thread, thread.merged_into_id)
    return thread
