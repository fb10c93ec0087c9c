"""Threading: the nearest archived ancestor is the parent; placeholders keep threads whole.

Works incrementally on a session: storing one message touches only the rows its own
Message-ID and references name (indexed), never a whole thread or list.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from listgate.models import Message, MessageRef, Subscription, Thread, ThreadNode, ThreadParticipant

MAX_DEPTH = 10_000  # the loop guard's bound on a parent walk


def choose_parent(chain: tuple[str, ...], archived: dict[str, int]) -> tuple[int | None, int]:
    """(message pk, position) of the nearest archived id in chain, or (None, -1)."""
    for pos in range(len(chain) - 1, -1, -1):
        pk = archived.get(chain[pos])
        if pk is not None:
            return pk, pos
    return None, -1


def _is_ancestor(session: Session, candidate: int, of: int) -> bool:
    """True when `of` is `candidate` or one of its ancestors (adopting would make a loop)."""
    current: int | None = candidate
    for _ in range(MAX_DEPTH):
        if current is None:
            return False
        if current == of:
            return True
        current = session.execute(select(Message.parent_id).where(Message.id == current)).scalar()
    return True  # deeper than any real thread: treat as a loop


def attach(
    session: Session, msg: Message, chain: tuple[str, ...], fallback_days: int, visible: bool = True
) -> tuple[Thread, bool]:
    """Put a freshly added message into its thread, merging threads it links.

    Returns the thread and whether it is new.
    """
    ids = (msg.message_id, *chain)
    nodes = {
        n.msgid: n
        for n in session.scalars(
            select(ThreadNode).where(ThreadNode.list_id == msg.list_id, ThreadNode.msgid.in_(ids))
        )
    }
    archived = {mid: n.message_pk for mid, n in nodes.items() if n.message_pk is not None}
    # A brand-new message has no descendants yet, so no choice here can make a loop.
    msg.parent_id, msg.parent_pos = choose_parent(chain, archived)

    thread_ids = sorted({n.thread_id for n in nodes.values()})
    thread: Thread | None = None
    if len(thread_ids) == 1:
        thread = session.get_one(Thread, thread_ids[0])
    elif thread_ids:
        thread = _merge(session, [session.get_one(Thread, t) for t in thread_ids])
    elif not chain:
        thread = _subject_thread(session, msg, fallback_days)
        if thread is not None:
            msg.parent_id = thread.root_message_pk  # a subject-only reply hangs under the root
    created = thread is None
    if thread is None:
        thread = Thread(
            list_id=msg.list_id, subject=msg.subject, subject_norm=msg.subject_norm,
            starter_name=msg.from_name, created_at=msg.date, last_activity=msg.date,
            subject_orphan=not chain and _is_reply(msg),
        )
        session.add(thread)
        session.flush()
    msg.thread_id = thread.id
    session.add(msg)
    session.flush()

    _record_nodes(session, msg, chain, nodes, thread.id)
    _adopt_children(session, msg)
    if len(thread_ids) > 1:
        session.refresh(thread, ["participant_count"])
    if visible:
        count_visible(session, thread, msg)
    if not chain and not _is_reply(msg):
        thread = _adopt_subject_orphans(session, msg, thread, fallback_days)
    return thread, created


def _is_reply(msg: Message) -> bool:
    from listgate.parsing import is_reply_subject

    return is_reply_subject(msg.subject)


def _subject_thread(session: Session, msg: Message, days: int) -> Thread | None:
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


def _adopt_subject_orphans(session: Session, msg: Message, thread: Thread, days: int) -> Thread:
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


def _record_nodes(session: Session, msg: Message, chain: tuple[str, ...], nodes: dict[str, ThreadNode], thread_id: int) -> None:
    own = nodes.get(msg.message_id)
    if own is None:
        session.add(ThreadNode(list_id=msg.list_id, msgid=msg.message_id, thread_id=thread_id, message_pk=msg.id))
    else:
        own.message_pk, own.thread_id = msg.id, thread_id
    for pos, ref in enumerate(chain):
        session.add(MessageRef(message_pk=msg.id, position=pos, list_id=msg.list_id, ref=ref))
        if ref not in nodes:
            node = ThreadNode(list_id=msg.list_id, msgid=ref, thread_id=thread_id)
            nodes[ref] = node
            session.add(node)
    session.flush()


def _adopt_children(session: Session, msg: Message) -> None:
    """Messages that arrived before this one and name it nearer than their current parent."""
    rows = session.execute(
        select(MessageRef.message_pk, MessageRef.position, Message.parent_pos)
        .join(Message, Message.id == MessageRef.message_pk)
        .where(MessageRef.list_id == msg.list_id, MessageRef.ref == msg.message_id, MessageRef.message_pk != msg.id)
    ).all()
    for child_pk, pos, current_pos in rows:
        if pos > current_pos and not _is_ancestor(session, msg.id, child_pk):
            session.execute(update(Message).where(Message.id == child_pk).values(parent_id=msg.id, parent_pos=pos))


def _merge(session: Session, threads: list[Thread], prefer: Thread | None = None) -> Thread:
    """Merge threads into the largest (or `prefer`); the others redirect to it."""
    threads = [t for t in {t.id: t for t in threads}.values()]
    survivor = prefer or max(threads, key=lambda t: (t.message_count, -t.id))
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
        survivor.mailing_list.thread_count -= 1
    survivor.subject_orphan = survivor.subject_orphan and all(t.subject_orphan for t in threads)
    session.flush()
    return survivor


def _move_followers(session: Session, old: int, new: int) -> None:
    taken = select(Subscription.address).where(Subscription.thread_key == new)
    session.execute(delete(Subscription).where(Subscription.thread_key == old, Subscription.address.in_(taken)))
    session.execute(update(Subscription).where(Subscription.thread_key == old).values(thread_key=new))


def _move_participants(session: Session, old: int, new: int) -> None:
    taken = select(ThreadParticipant.address).where(ThreadParticipant.thread_id == new)
    session.execute(delete(ThreadParticipant).where(ThreadParticipant.thread_id == old, ThreadParticipant.address.in_(taken)))
    session.execute(update(ThreadParticipant).where(ThreadParticipant.thread_id == old).values(thread_id=new))
    n = session.scalar(select(func.count()).select_from(ThreadParticipant).where(ThreadParticipant.thread_id == new))
    session.execute(update(Thread).where(Thread.id == new).values(participant_count=n))


def count_visible(session: Session, thread: Thread, msg: Message) -> None:
    """Count a visible message in its thread; in the same transaction as the message."""
    thread.message_count += 1
    thread.last_activity = max(thread.last_activity, msg.date)
    if thread.root_message_pk is None or (msg.parent_id is None and (
            msg.date < thread.created_at or _has_parent(session, thread.root_message_pk))):
        thread.root_message_pk = msg.id
        thread.subject, thread.subject_norm, thread.starter_name = msg.subject, msg.subject_norm, msg.from_name
        thread.created_at = min(thread.created_at, msg.date)
    addr = msg.from_addr or msg.from_name
    # A thread with no participant yet (a new one) needs no lookup.
    if addr and (thread.participant_count == 0 or session.get(ThreadParticipant, (thread.id, addr)) is None):
        session.add(ThreadParticipant(thread_id=thread.id, address=addr))
        thread.participant_count += 1


def _has_parent(session: Session, message_pk: int) -> bool:
    """True when the message was adopted since (a late ancestor arrived): it is no root any more."""
    return session.scalar(select(Message.parent_id).where(Message.id == message_pk)) is not None


def resolve(session: Session, thread_id: int) -> Thread | None:
    """The thread, following merge redirects."""
    thread = session.get(Thread, thread_id)
    for _ in range(100):
        if thread is None or thread.merged_into_id is None:
            return thread
        thread = session.get(Thread, thread.merged_into_id)
    return thread
