"""Threading: the nearest archived ancestor is the parent; placeholders keep threads whole.

Works incrementally on a session: storing one message touches only the rows its own
Message-ID and references name (indexed), never a whole thread or list. Rows are written
with Core statements (no ORM unit of work on the hot path); Thread objects stay ORM objects
(cached in the session's identity map), flushed before any query that filters on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, lazyload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import Insert

from listgate.models import Message, MessageRef, Subscription, Thread, ThreadNode, ThreadParticipant
from listgate.models.archive import utcnow
from listgate.models.people import ACTIVE, AWAITING, ENDED, PENDING, SUSPENDED

MAX_DEPTH = 10_000  # the loop guard's bound on a parent walk
_NODES = ThreadNode.__table__
_MESSAGES = Message.__table__
_THREADS = Thread.__table__
_REFS = MessageRef.__table__
_BUILT: dict[str, Any] = {}


def _built(name: str) -> Any:
    """A hot statement, built once (with bind parameters) instead of once per message."""
    stmt = _BUILT.get(name)
    if stmt is None:
        stmt = _BUILT[name] = _BUILDERS[name]()
        return stmt
    return stmt


@dataclass
class Draft:
    """A message being stored: its column values; `id` once inserted."""

    values: dict[str, Any]
    id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


_IGNORING: dict[tuple[str, str], Insert] = {}


def insert_ignore(session: Session, model: Any) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING for model's table (SQLite or PostgreSQL); built once per dialect."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    stmt = _IGNORING.get((dialect, table.name))
    if stmt is None:
        stmt = (postgresql if dialect == "postgresql" else sqlite).insert(table).on_conflict_do_nothing()
        _IGNORING[(dialect, table.name)] = stmt
    return stmt


def choose_parent(chain: tuple[str, ...], archived: dict[str, int]) -> tuple[int | None, int]:
    """(message pk, position) of the nearest archived id in chain, or (None, -1)."""
    for pos in range(len(chain) - 1, -1, -1):
        pk = archived.get(chain[pos])
        if pk is not None:
            return pk, pos
    return None, -1


def _is_ancestor(session: Session, candidate: int, of: int) -> bool:
    """True when `of` is `candidate` or one of its ancestors (adopting would make a loop)."""
    conn = session.connection()
    stmt = _built("parent_of")
    current: int | None = candidate
    for _ in range(MAX_DEPTH):
        if current is None:
            return False
        if current == of:
            return True
        current = conn.execute(stmt, {"pk": current}).scalar()
    return True  # deeper than any real thread: treat as a loop


def attach(session: Session, draft: Draft, chain: tuple[str, ...], fallback_days: int,
           visible: bool = True) -> tuple[Thread, bool]:
    """Insert a new message (draft) into its thread, merging threads it links.

    Returns the thread and whether it is new; draft.id is the new message's pk.
    """
    conn = session.connection()
    nodes = {row.msgid: row for row in conn.execute(
        _built("nodes"), {"list_id": draft.list_id, "ids": [draft.message_id, *chain]})}
    archived = {mid: n.message_pk for mid, n in nodes.items() if n.message_pk is not None}
    # A brand-new message has no descendants yet, so no choice here can make a loop.
    parent_id, parent_pos = choose_parent(chain, archived)

    thread_ids = sorted({n.thread_id for n in nodes.values()})
    thread: Thread | None = None
    if len(thread_ids) == 1:
        thread = _thread(session, thread_ids[0])
    elif thread_ids:
        thread = _merge(session, [_thread(session, t) for t in thread_ids])
    elif not chain:
        thread = _subject_thread(session, draft, fallback_days)
        if thread is not None:
            parent_id = thread.root_message_pk  # a subject-only reply hangs under the root
    created = thread is None
    if thread is None:
        thread = _new_thread(session, draft, subject_orphan=not chain and _is_reply(draft))
    draft.values.update(thread_id=thread.id, parent_id=parent_id, parent_pos=parent_pos)
    draft.id = conn.execute(_built("message"), draft.values).scalar_one()

    _record_nodes(session, draft, chain, nodes, thread.id)
    _adopt_children(session, draft)
    if len(thread_ids) > 1:
        session.refresh(thread, ["participant_count"])
    if visible:
        count_visible(session, thread, draft)
    if not chain and not _is_reply(draft):
        thread = _adopt_subject_orphans(session, draft, thread, fallback_days)
    return thread, created


def _threads(session: Session) -> dict[int, Thread]:
    """Threads this transaction loaded or wrote, held strongly (the identity map only holds weak references).

    Their counts are written by Core UPDATEs that the ORM does not track, so any rollback
    (a savepoint's too) drops them from the session and empties this cache.
    """
    cache = session.info.get(_CACHE)
    if cache is None or cache[0] is not session.get_transaction():
        if _CACHE not in session.info:
            event.listen(session, "after_soft_rollback", _forget_threads)
        cache = session.info[_CACHE] = (session.get_transaction(), {})
    return cache[1]


def _forget_threads(session: Session, _previous: Any) -> None:
    cache = session.info.get(_CACHE)
    if cache:
        for thread in cache[1].values():
            if thread in session:
                session.expunge(thread)  # reloaded from the database when next needed (maybe gone)
        cache[1].clear()


_CACHE = "listgate.threads"


def _thread(session: Session, thread_id: int) -> Thread:
    """The thread (kept for the rest of the transaction), without joining its list."""
    cache = _threads(session)
    thread = cache.get(thread_id)
    if thread is None:
        thread = cache[thread_id] = session.get_one(Thread, thread_id, options=(lazyload(Thread.mailing_list),))
    return thread


def _new_thread(session: Session, draft: Draft, subject_orphan: bool) -> Thread:
    """A thread started by draft: one INSERT, then tracked by the session without a SELECT."""
    values = dict(
        list_id=draft.list_id, subject=draft.subject, subject_norm=draft.subject_norm, starter_name=draft.from_name,
        created_at=draft.date, last_activity=draft.date, subject_orphan=subject_orphan, root_message_pk=None,
        message_count=0, participant_count=0, merged_into_id=None, featured=False,
    )
    thread = Thread(id=session.connection().execute(_built("thread"), values).scalar_one(), **values)
    make_transient_to_detached(thread)
    session.add(thread)
    _threads(session)[thread.id] = thread
    return thread


def _is_reply(msg: Any) -> bool:
    from listgate.parsing import is_reply_subject

    return is_reply_subject(msg.subject)


def _subject_thread(session: Session, msg: Any, days: int) -> Thread | None:
    """The recent thread with the same normalised subject, for a reply that names no parent."""
    if days <= 0 or not msg.subject_norm or not _is_reply(msg):
        return None
    return session.scalars(
        select(Thread)
        .where(
            Thread.list_id == msg.list_id,
            Thread.subject_norm == msg.subject_norm,
            Thread.merged_into_id.is_(None),
            Thread.last_activity >= msg.date - timedelta(days=days),
            Thread.created_at <= msg.date + timedelta(days=days),
        )
        .order_by(Thread.last_activity.desc())
        .limit(1)
    ).first()


def _adopt_subject_orphans(session: Session, msg: Any, thread: Thread, days: int) -> Thread:
    """An original post adopts threads started earlier by subject-only replies to it."""
    if days <= 0 or not msg.subject_norm:
        return thread
    orphans = session.scalars(
        select(Thread).where(
            Thread.list_id == msg.list_id,
            Thread.subject_norm == msg.subject_norm,
            Thread.subject_orphan.is_(True),
            Thread.merged_into_id.is_(None),
            Thread.id != thread.id,
            Thread.created_at >= msg.date,
            Thread.created_at <= msg.date + timedelta(days=days),
        )
    ).all()
    for orphan in orphans:
        root = orphan.root_message_pk
        thread = _merge(session, [thread, orphan], prefer=thread)
        if root is not None:
            session.execute(update(Message).where(Message.id == root, Message.parent_id.is_(None)).values(parent_id=msg.id))
    if orphans:
        session.refresh(thread, ["participant_count"])
    return thread


def _record_nodes(session: Session, draft: Draft, chain: tuple[str, ...], nodes: dict[str, Any], thread_id: int) -> None:
    """The message's own node (new or filled in), its reference rows and placeholder nodes."""
    conn = session.connection()
    own = nodes.get(draft.message_id)
    if own is None:
        conn.execute(_built("node"), {"list_id": draft.list_id, "msgid": draft.message_id, "thread_id": thread_id,
                                      "message_pk": draft.id})
    else:
        conn.execute(_built("fill_node"), {"node": own.id, "message_pk": draft.id, "thread_id": thread_id})
    if not chain:
        return
    conn.execute(_built("ref"), [
        {"message_pk": draft.id, "position": pos, "list_id": draft.list_id, "ref": ref} for pos, ref in enumerate(chain)
    ])
    placeholders = [{"list_id": draft.list_id, "msgid": ref, "thread_id": thread_id, "message_pk": None}
                    for ref in dict.fromkeys(chain) if ref not in nodes and ref != draft.message_id]
    if placeholders:
        conn.execute(_built("node"), placeholders)


def _adopt_children(session: Session, msg: Draft) -> None:
    """Messages that arrived before this one and name it nearer than their current parent."""
    conn = session.connection()
    rows = conn.execute(_built("children"), {"list_id": msg.list_id, "ref": msg.message_id, "pk": msg.id}).all()
    for child_pk, pos, current_pos in rows:
        if pos > current_pos and not _is_ancestor(session, msg.id, child_pk):
            conn.execute(_built("adopt"), {"child": child_pk, "parent_id": msg.id, "parent_pos": pos})


def _merge(session: Session, threads: list[Thread], prefer: Thread | None = None) -> Thread:
    """Merge threads into the largest (or `prefer`); the others redirect to it."""
    session.flush()  # the statements below work on rows: write what the session holds first
    threads = [t for t in {t.id: t for t in threads}.values()]
    survivor = prefer or max(threads, key=lambda t: (t.message_count, -t.id))
    counted = sum(1 for t in threads if t.message_count > 0)  # threads with no published post are not counted
    for other in threads:
        if other.id == survivor.id:
            continue
        for model, column in ((Message, Message.thread_id), (ThreadNode, ThreadNode.thread_id)):
            session.execute(update(model).where(column == other.id).values(thread_id=survivor.id))
        _move_followers(session, other.id, survivor.id)
        _move_participants(session, other.id, survivor.id)
        session.execute(update(Thread).where(Thread.merged_into_id == other.id).values(merged_into_id=survivor.id))
        survivor.message_count += other.message_count
        survivor.last_activity = max(survivor.last_activity, other.last_activity)
        if other.created_at < survivor.created_at:
            survivor.created_at, survivor.subject = other.created_at, other.subject
            survivor.subject_norm, survivor.starter_name = other.subject_norm, other.starter_name
            survivor.root_message_pk = other.root_message_pk
        survivor.featured = survivor.featured or other.featured
        other.merged_into_id, other.message_count = survivor.id, 0
    survivor.mailing_list.thread_count -= counted - (1 if survivor.message_count > 0 else 0)
    survivor.subject_orphan = survivor.subject_orphan and all(t.subject_orphan for t in threads)
    session.flush()
    return survivor


def _move_followers(session: Session, old: int, new: int) -> None:
    """Follows and mutes of a merged thread move to the survivor; rows are never deleted (deliveries point at them).

    Where the address already has the same kind of row on the survivor, the livelier state is
    kept there and the old row ends, staying on the old thread with its history.
    """
    rank = {ACTIVE: 4, AWAITING: 3, PENDING: 2, SUSPENDED: 1}
    kept = {(s.address, s.kind): s for s in session.scalars(select(Subscription).where(Subscription.thread_key == new))}
    for sub in session.scalars(select(Subscription).where(Subscription.thread_key == old)).all():
        there = kept.get((sub.address, sub.kind))
        if there is None:
            sub.thread_key = new
            continue
        if rank.get(sub.status, 0) > rank.get(there.status, 0):
            there.status, there.confirmed_at, there.ended_at, there.end_reason = (
                sub.status, sub.confirmed_at, sub.ended_at, sub.end_reason)
        if sub.status != ENDED:
            sub.status, sub.ended_at, sub.end_reason = ENDED, utcnow(), f"thread merged into {new}"
    session.flush()


def _move_participants(session: Session, old: int, new: int) -> None:
    taken = select(ThreadParticipant.address).where(ThreadParticipant.thread_id == new)
    session.execute(delete(ThreadParticipant).where(ThreadParticipant.thread_id == old, ThreadParticipant.address.in_(taken)))
    session.execute(update(ThreadParticipant).where(ThreadParticipant.thread_id == old).values(thread_id=new))
    n = session.scalar(select(func.count()).select_from(ThreadParticipant).where(ThreadParticipant.thread_id == new))
    session.execute(update(Thread).where(Thread.id == new).values(participant_count=n))


def count_visible(session: Session, thread: Thread, msg: Any) -> None:
    """Count a visible message (a Draft or a Message) in its thread; in the same transaction as the message.

    The thread row is written at once (one UPDATE) and the object kept in step without
    becoming dirty, so later queries on threads need no flush.
    """
    values = {c: getattr(thread, c) for c in _COUNTED}
    values["message_count"] += 1
    if values["message_count"] == 1:  # its first published post: only now is it one of the list's threads
        thread.mailing_list.thread_count += 1
    values["last_activity"] = max(thread.last_activity, msg.date)
    if thread.root_message_pk is None or (msg.parent_id is None and (
            msg.date < thread.created_at or _has_parent(session, thread.root_message_pk))):
        values.update(root_message_pk=msg.id, subject=msg.subject, subject_norm=msg.subject_norm,
                      starter_name=msg.from_name, created_at=min(thread.created_at, msg.date))
    addr = msg.from_addr or msg.from_name
    conn = session.connection()
    if addr and conn.execute(insert_ignore(session, ThreadParticipant), {"thread_id": thread.id, "address": addr}).rowcount:
        values["participant_count"] += 1
    conn.execute(_built("count"), {"tid": thread.id, **values})
    for name, value in values.items():
        set_committed_value(thread, name, value)


_COUNTED = ("message_count", "last_activity", "root_message_pk", "subject", "subject_norm", "starter_name",
            "created_at", "participant_count")


def _has_parent(session: Session, message_pk: int) -> bool:
    """True when the message was adopted since (a late ancestor arrived): it is no root any more."""
    return session.connection().execute(_built("parent_of"), {"pk": message_pk}).scalar() is not None


_BUILDERS: dict[str, Any] = {
    "parent_of": lambda: select(_MESSAGES.c.parent_id).where(_MESSAGES.c.id == bindparam("pk")),
    "nodes": lambda: select(_NODES.c.id, _NODES.c.msgid, _NODES.c.thread_id, _NODES.c.message_pk).where(
        _NODES.c.list_id == bindparam("list_id"), _NODES.c.msgid.in_(bindparam("ids", expanding=True))),
    "message": lambda: insert(_MESSAGES).returning(_MESSAGES.c.id),
    "thread": lambda: insert(_THREADS).returning(_THREADS.c.id),
    "node": lambda: insert(_NODES),
    "fill_node": lambda: update(_NODES).where(_NODES.c.id == bindparam("node")),
    "ref": lambda: insert(_REFS),
    "children": lambda: select(_REFS.c.message_pk, _REFS.c.position, _MESSAGES.c.parent_pos)
    .join(_MESSAGES, _MESSAGES.c.id == _REFS.c.message_pk)
    .where(_REFS.c.list_id == bindparam("list_id"), _REFS.c.ref == bindparam("ref"), _REFS.c.message_pk != bindparam("pk")),
    "adopt": lambda: update(_MESSAGES).where(_MESSAGES.c.id == bindparam("child")),
    "count": lambda: update(_THREADS).where(_THREADS.c.id == bindparam("tid")),
}


def resolve(session: Session, thread_id: int) -> Thread | None:
    """The thread, following merge redirects."""
    thread = session.get(Thread, thread_id)
    for _ in range(100):
        if thread is None or thread.merged_into_id is None:
            return thread
        thread = session.get(Thread, thread.merged_into_id)
    return thread
