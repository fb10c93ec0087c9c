"""Who takes part in a thread: the people with a visible post in it (their thread_participants
rows, one per thread and address, keep each thread's participant_count without recounting).

An address is a post's From address, else its From name. A post arriving visible, approved or
restored adds its author (joins); one hidden or removed that was its author's last visible post in
the thread takes them out (step); merges move the rows, recounts write them anew.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from listgate import places, store
from listgate.models import Message, Thread, ThreadParticipant
from listgate.states import PostState
from listgate.store import table

_MESSAGES = table(Message)
_PARTICIPANTS = table(ThreadParticipant)
_PARTICIPANTS_AMONG = store.blind(
    select(_PARTICIPANTS.c.thread_id, _PARTICIPANTS.c.address).where(
        _PARTICIPANTS.c.thread_id.in_(bindparam("threads", expanding=True)),
        _PARTICIPANTS.c.address.in_(bindparam("addresses", expanding=True)),
    )
)


def joins(session: Session, thread_id: int, address: str) -> bool:
    """True when address is new among the thread's participants; its row is then written.

    Where the transaction knows the answer (its own rows, a thread it started, what
    `learn` read) the row goes in with the batch's others; else one INSERT tells.
    """
    state = store.tx(session)
    known = state.participants.get((thread_id, address))
    if known is None and thread_id in state.new_threads:
        known = False
    state.participants[(thread_id, address)] = True
    if known:
        return False
    row = {"thread_id": thread_id, "address": address}
    statement = store.of(session).insert_ignore(ThreadParticipant)
    if known is None:
        return bool(session.connection().execute(statement, row).rowcount)
    places.insert_rows(session.connection(), statement, [row])
    return True


def _leaves(session: Session, msg: Message) -> bool:
    """True when msg (a visible post about to be hidden or removed) is its author's last visible
    post in its thread; the author's participant row is then deleted."""
    address = msg.from_addr or msg.from_name
    if not address:
        return False
    conn = session.connection()
    others = conn.execute(
        select(_MESSAGES.c.from_addr, _MESSAGES.c.from_name).where(
            _MESSAGES.c.thread_id == msg.thread_id,
            _MESSAGES.c.status == PostState.VISIBLE,
            _MESSAGES.c.id != msg.id,
            (_MESSAGES.c.from_addr == address) | (_MESSAGES.c.from_name == address),
        )
    )
    if any((r.from_addr or r.from_name) == address for r in others):
        return False
    conn.execute(
        delete(_PARTICIPANTS).where(
            _PARTICIPANTS.c.thread_id == msg.thread_id, _PARTICIPANTS.c.address == address
        )
    )
    store.tx(session).participants[(msg.thread_id, address)] = False
    return True


def step(session: Session, msg: Message, step: int) -> int:
    """How a thread's participants move when msg leaves (-1) or comes back (+1): they are the
    people with a visible post in it."""
    if step < 0:
        return -1 if _leaves(session, msg) else 0
    address = msg.from_addr or msg.from_name
    return 1 if address and joins(session, msg.thread_id, address) else 0


def learn(session: Session, thread_ids: Iterable[int], addresses: Iterable[str]) -> None:
    """Read which of addresses take part in which of the threads (one query), for the batch's
    posts."""
    threads, wanted = list(dict.fromkeys(thread_ids)), list(dict.fromkeys(addresses))
    if not threads or not wanted:
        return
    found = {
        (r.thread_id, r.address)
        for r in session.connection().execute(
            _PARTICIPANTS_AMONG, {"threads": threads, "addresses": wanted}
        )
    }
    state = store.tx(session)
    for thread_id in threads:
        for address in wanted:
            state.participants.setdefault((thread_id, address), (thread_id, address) in found)


def move(session: Session, old: int, new: int) -> None:
    """A merged-away thread's participants join the survivor's, which is recounted."""
    taken = select(ThreadParticipant.address).where(ThreadParticipant.thread_id == new)
    session.execute(
        delete(ThreadParticipant).where(
            ThreadParticipant.thread_id == old, ThreadParticipant.address.in_(taken)
        )
    )
    session.execute(
        update(ThreadParticipant).where(ThreadParticipant.thread_id == old).values(thread_id=new)
    )
    n = session.scalar(
        select(func.count())
        .select_from(ThreadParticipant)
        .where(ThreadParticipant.thread_id == new)
    )
    session.execute(update(Thread).where(Thread.id == new).values(participant_count=n))


def rebuild(session: Session, thread_id: int) -> int:
    """The thread's participants written anew from its visible posts (after a part moved away);
    how many they are."""
    conn = session.connection()
    conn.execute(delete(_PARTICIPANTS).where(_PARTICIPANTS.c.thread_id == thread_id))
    places.forget(session)
    people = {
        r.from_addr or r.from_name
        for r in conn.execute(
            select(_MESSAGES.c.from_addr, _MESSAGES.c.from_name).where(
                _MESSAGES.c.thread_id == thread_id, _MESSAGES.c.status == PostState.VISIBLE
            )
        )
    } - {""}
    if people:
        conn.execute(
            insert(_PARTICIPANTS), [{"thread_id": thread_id, "address": a} for a in people]
        )
    return len(people)
