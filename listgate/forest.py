"""Parent edges: chosen from every id a mail names, else by subject; loops cut where the Date is
earliest.

Every choice is a function of message content (the ids a message names, which of them are
archived and what those name in turn; subjects and dates), never of arrival order, so a
list's forest depends only on the set of messages it holds. A message stores the parent its
headers choose (pref_parent_id); parent_id is the same except on the one message of a loop
whose edge is cut: the member with the earliest (Date, Message-ID).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from listgate import conversations, places, store
from listgate.mail.keys import thread_keys as thread_keys  # where tests and tools found it
from listgate.models import Message, MessageRef, ThreadNode
from listgate.store import table

MAX_DEPTH = 10_000  # the bound on any walk up a chain of parents
_M = table(Message)
_REFS = table(MessageRef)
_NODES = table(ThreadNode)
# (id, place in In-Reply-To or 0), References order then In-Reply-To's others
Named = Sequence[tuple[str, int]]


def choose_parent(
    named: Named, archived: Mapping[str, int], declared: Mapping[int, Iterable[str]]
) -> tuple[int | None, int]:
    """(pk, place in named) of the parent: the nearest archived id, or (None, -1).

    In-Reply-To's archived ids come first, else References'. "Nearest" is the candidate whose
    own declared ids include most of the other candidates, so References listed parent-first
    still give the deepest one; ties go to the id listed last (References order, then
    In-Reply-To's ids not in References), as References lists the nearest last.
    """
    candidates = {k for k, _ in named if k in archived}
    if not candidates:
        return None, -1
    pool = [(pos, k) for pos, (k, irt) in enumerate(named) if k in candidates and irt]
    pool = pool or [(pos, k) for pos, (k, _) in enumerate(named) if k in candidates]

    def nearness(candidate: tuple[int, str]) -> tuple[int, int]:
        pos, k = candidate
        return len(candidates.intersection(declared.get(archived[k], ())) - {k}), pos

    pos, key = max(pool, key=nearness)
    return archived[key], pos


_DECLARED = store.apart(  # written rows: declared_ids adds the batch's waiting ones
    select(_REFS.c.message_pk, _REFS.c.ref).where(
        _REFS.c.message_pk.in_(bindparam("pks", expanding=True))
    )
)


def declared_ids(conn: Connection, pks: Iterable[int]) -> dict[int, set[str]]:
    """The ids each of these messages names."""
    wanted = list(pks)
    out: dict[int, set[str]] = {}
    for pk, ref in conn.execute(_DECLARED, {"pks": wanted}):
        out.setdefault(pk, set()).add(ref)
    for row in places.waiting_among(conn, _REFS.name, "message_pk", wanted):
        out.setdefault(row["message_pk"], set()).add(row["ref"])
    return out


def header_parent(
    conn: Connection, named: Named, archived: Mapping[str, int]
) -> tuple[int | None, int]:
    """choose_parent, reading what the candidates name only when there is a choice to make."""
    candidates = [(k, irt) for k, irt in named if k in archived]
    # In-Reply-To's first, as chosen
    pool = [k for k, irt in candidates if irt] or [k for k, _ in candidates]
    if len(pool) < 2:
        return choose_parent(named, archived, {})
    return choose_parent(named, archived, declared_ids(conn, {archived[k] for k, _ in candidates}))


_NAMERS = (
    select(_REFS.c.message_pk, _REFS.c.ref, _REFS.c.in_reply_to)
    .where(
        _REFS.c.message_pk.in_(
            select(_REFS.c.message_pk).where(
                _REFS.c.list_id == bindparam("list_id"),
                _REFS.c.ref == bindparam("ref"),
                _REFS.c.message_pk != bindparam("pk"),
            )
        )
    )
    .order_by(_REFS.c.message_pk, _REFS.c.position)
)


def reparent_namers(session: Session, msg_pk: int, msgid: str, list_id: int) -> set[int]:
    """Messages that name a newly archived id choose again (it may be nearer); the threads
    touched."""
    conn = session.connection()
    rows = conn.execute(_NAMERS, {"list_id": list_id, "ref": msgid, "pk": msg_pk}).all()
    if not rows:
        return set()
    named: dict[int, list[tuple[str, int]]] = {}
    for pk, ref, irt in rows:
        named.setdefault(pk, []).append((ref, irt))
    archived = dict(
        conn.execute(
            select(_NODES.c.msgid, _NODES.c.message_pk).where(
                _NODES.c.list_id == list_id,
                _NODES.c.msgid.in_({r.ref for r in rows}),
                _NODES.c.message_pk.is_not(None),
            )
        ).all()
    )
    pks = set(archived.values())
    declared = declared_ids(conn, pks) if len(pks) > 1 else {}
    touched: set[int] = set()
    for pk, ids in named.items():
        parent, pos = choose_parent(ids, archived, declared)
        touched |= set_parent(conn, pk, parent, pos)
    return touched


_ROW = select(
    _M.c.id, _M.c.pref_parent_id, _M.c.parent_id, _M.c.thread_date, _M.c.message_id, _M.c.thread_id
).where(_M.c.id == bindparam("pk"))


def set_parent(conn: Connection, pk: int, parent: int | None, pos: int = -1) -> set[int]:
    """Give a message a new chosen parent, keeping every loop cut at its earliest member; the
    threads touched."""
    me = conn.execute(_ROW, {"pk": pk}).one()
    if me.pref_parent_id == parent:
        return set()
    touched = {me.thread_id}
    if me.pref_parent_id is not None:
        loop = _walk(conn, me.pref_parent_id, pk)
        for row in loop or ():  # that loop is open now: its cut edge comes back
            if row.parent_id is None and row.pref_parent_id is not None:
                conn.execute(
                    update(_M).where(_M.c.id == row.id).values(parent_id=row.pref_parent_id)
                )
    conn.execute(
        update(_M)
        .where(_M.c.id == pk)
        .values(pref_parent_id=parent, parent_id=parent, parent_pos=pos)
    )
    loop = _walk(conn, parent, pk) if parent is not None else None
    if loop is not None:
        cut = min([*loop, me], key=lambda r: (r.thread_date, r.message_id))
        conn.execute(update(_M).where(_M.c.id == cut.id).values(parent_id=None))
    return touched


def _walk(conn: Connection, start: int, target: int) -> list[Any] | None:
    """The chosen-parent chain from start when it reaches target (a loop: its rows), else None."""
    rows: list[Any] = []
    seen: set[int] = set()
    current: int | None = start
    while current is not None and current not in seen and len(seen) < MAX_DEPTH:
        if current == target:
            return rows
        seen.add(current)
        row = conn.execute(_ROW, {"pk": current}).first()
        if row is None:
            return None
        rows.append(row)
        current = row.pref_parent_id
    return None


_EARLIER = store.apart(  # the written rows: nearest_earlier adds the batch's waiting ones
    select(_M.c.id, _M.c.thread_id, _M.c.message_id, _M.c.thread_date)
    .where(
        _M.c.list_id == bindparam("list_id"),
        _M.c.thread_subject_norm == bindparam("subject_norm"),
        _M.c.thread_date <= bindparam("hi"),
        _M.c.thread_date >= bindparam("lo"),
        ~exists().where(_REFS.c.message_pk == _M.c.id, _REFS.c.ref == bindparam("msgid")),
    )
    .order_by(_M.c.thread_date.desc())
)


class _Earlier(NamedTuple):
    """A waiting messages row as _EARLIER gives a written one."""

    id: int
    thread_id: int
    message_id: str
    thread_date: datetime


def nearest_earlier(
    conn: Connection, list_id: int, subject_norm: str, date: datetime, msgid: str, days: int
) -> Any | None:
    """The subject fallback's parent: the latest message of that subject before this one, within
    days; a message that names this one is no parent.

    "Before" is by (Date, Message-ID), the Message-IDs compared here in Python: database
    collations order strings differently, and every such comparison must agree. The written
    rows are read latest first by one indexed query (which leaves the batch's rows waiting) until
    they are older than the best found; the batch's waiting rows are looked at too.
    """
    lo = date - timedelta(days=days)
    # a row can wait with the message it names (a message placed anew names again)
    naming = {r["message_pk"] for r in places.waiting_among(conn, _REFS.name, "ref", [msgid])}
    best: Any = max(
        (
            _Earlier(r["id"], r["thread_id"], r["message_id"], r["thread_date"])
            for r in places.waiting(conn, _M.name)
            if r["list_id"] == list_id
            and r["thread_subject_norm"] == subject_norm
            and lo <= r["thread_date"] <= date
            and (r["thread_date"] < date or r["message_id"] < msgid)
            and r["id"] not in naming
        ),
        key=_date_and_id,
        default=None,
    )
    params = {"list_id": list_id, "subject_norm": subject_norm, "hi": date, "lo": lo}
    with conn.execute(_EARLIER, {**params, "msgid": msgid}) as written:
        for row in written:
            if best is not None and row.thread_date < best.thread_date:
                break
            if (
                (row.thread_date < date or row.message_id < msgid)
                and row.id not in naming
                and (best is None or _date_and_id(row) > _date_and_id(best))
            ):
                best = row
    return best


def _date_and_id(row: Any) -> tuple[datetime, str]:
    return row.thread_date, row.message_id


_PARENT = _M.alias("parent")
_REHANG = store.apart(  # messages only, the written ones: _same_subject_after adds the waiting
    select(
        _M.c.id,
        _M.c.thread_id,
        _M.c.message_id,
        _M.c.thread_date,
        _PARENT.c.message_id.label("p_msgid"),
        _PARENT.c.thread_date.label("p_date"),
        _M.c.pref_parent_id,
    )
    .outerjoin(_PARENT, _PARENT.c.id == _M.c.pref_parent_id)
    .where(
        _M.c.list_id == bindparam("list_id"),
        _M.c.thread_subject_norm == bindparam("subject_norm"),
        _M.c.by_subject.is_(True),
        _M.c.thread_date >= bindparam("lo"),
        _M.c.thread_date <= bindparam("hi"),
        _M.c.id != bindparam("pk"),
    )
)


def _same_subject_after(
    conn: Connection, list_id: int, subject_norm: str, date: datetime, pk: int, days: int
) -> Sequence[Any]:
    """Subject-fallback messages of that subject dated date to days later, pk left out (one indexed
    query, and the batch's rows still waiting), by (date, id) as that index gives them."""
    hi = date + timedelta(days=days)
    written: list[Any] = list(
        conn.execute(
            _REHANG,
            {"list_id": list_id, "subject_norm": subject_norm, "lo": date, "hi": hi, "pk": pk},
        )
    )
    rows = places.waiting(conn, _M.name)
    mine = [
        r
        for r in rows
        if r["by_subject"]
        and r["list_id"] == list_id
        and r["thread_subject_norm"] == subject_norm
        and date <= r["thread_date"] <= hi
        and r["id"] != pk
    ]
    if not mine:
        return written
    by_id = {r["id"]: r for r in rows}
    parents = {
        p.id: p._asdict()
        for p in conn.execute(
            _WRITTEN_PARENTS,
            {"pks": [r["pref_parent_id"] for r in mine if r["pref_parent_id"] not in by_id]},
        )
    }
    for r in mine:
        parent = by_id.get(r["pref_parent_id"]) or parents.get(r["pref_parent_id"])
        written.append(
            _Rehang(
                r["id"],
                r["thread_id"],
                r["message_id"],
                r["thread_date"],
                None if parent is None else parent["message_id"],
                None if parent is None else parent["thread_date"],
                r["pref_parent_id"],
            )
        )
    return sorted(written, key=lambda r: (r.thread_date, r.id))


class _Rehang(NamedTuple):
    """A waiting row as _REHANG gives a written one."""

    id: int
    thread_id: int
    message_id: str
    thread_date: datetime
    p_msgid: str | None
    p_date: datetime | None
    pref_parent_id: int | None


_WRITTEN_PARENTS = store.apart(
    select(_M.c.id, _M.c.message_id, _M.c.thread_date).where(
        _M.c.id.in_(bindparam("pks", expanding=True))
    )
)


def rehang_by_subject(session: Session, new: Any, days: int) -> set[int]:
    """Subject-fallback messages for which the new message is nearer than their parent move under
    it."""
    if (
        days <= 0
        or not new.thread_subject_norm
        or not places.linked_by_subject(session, new.list_id, new.thread_subject_norm)
    ):
        return set()
    rows = _same_subject_after(
        session.connection(), new.list_id, new.thread_subject_norm, new.thread_date, new.id, days
    )
    mine, named = (new.thread_date, new.message_id), {k for k, _ in new.named}
    touched: set[int] = set()
    for row in rows:
        if (
            mine < (row.thread_date, row.message_id)
            and row.message_id not in named
            and (row.p_msgid is None or (row.p_date, row.p_msgid) < mine)
        ):
            touched |= relink(session, row, new.id, row.p_msgid)
    return touched


def relink(session: Session, row: Any, parent_pk: int, old_msgid: str | None) -> set[int]:
    """Move a subject-fallback message under a new parent; the thread parts that link alone follow.

    The part joined to the message goes to the new parent's thread (a merge when the old
    parent is still joined to it); a part left joined to nothing becomes a thread of its own.
    """
    conn = session.connection()
    source = row.thread_id
    target = conn.execute(select(_M.c.thread_id).where(_M.c.id == parent_pk)).scalar_one()
    touched = set_parent(conn, row.id, parent_pk) | {target}
    if old_msgid is None:
        return touched | {conversations.merge(session, [source, target]).id}
    pks, ids = _side(conn, source, row.message_id)
    if old_msgid in ids:
        return touched | {conversations.merge(session, [source, target]).id}
    if source != target:
        conversations.move(session, pks, ids, source, target)
        return touched
    pks, ids = _side(conn, source, old_msgid)  # the old parent's part, left alone
    return touched | {conversations.split(session, pks, ids, source)}


def _side(conn: Connection, thread_id: int, start: str) -> tuple[set[int], set[str]]:
    """(message pks, ids) of the part of a thread joined to start (whose subject link was just moved
    away)."""
    nodes, near = _links(conn, {thread_id})
    seen = _reach(near, start) & nodes.keys()  # the moved link's new end lies in another thread
    return {pk for m in seen if (pk := nodes[m][0]) is not None}, seen


def _links(
    conn: Connection, thread_ids: set[int]
) -> tuple[dict[str, tuple[int | None, int]], dict[str, set[str]]]:
    """The nodes of these threads ({id: (message pk or None, thread)}) and what joins them: names,
    subject links."""
    nodes = {
        r.msgid: (r.message_pk, r.thread_id)
        for r in conn.execute(
            select(_NODES.c.msgid, _NODES.c.message_pk, _NODES.c.thread_id).where(
                _NODES.c.thread_id.in_(thread_ids)
            )
        )
    }
    mine = _M.c.thread_id.in_(thread_ids)
    edges = conn.execute(
        select(_M.c.message_id, _REFS.c.ref)
        .join(_REFS, _REFS.c.message_pk == _M.c.id)
        .where(mine)
        .union_all(
            select(_M.c.message_id, _PARENT.c.message_id)
            .join(_PARENT, _PARENT.c.id == _M.c.pref_parent_id)
            .where(mine, _M.c.by_subject.is_(True))
        )
    ).all()
    near: dict[str, set[str]] = {}
    for a, b in edges:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)
    return nodes, near


def _reach(near: Mapping[str, set[str]], start: str) -> set[str]:
    """Every id joined to start."""
    seen, queue = {start}, deque([start])
    while queue:
        for other in near.get(queue.popleft(), ()):
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return seen


def rechoose_by_subject(
    conn: Connection, pk: int, list_id: int, subject_norm: str, date: datetime, days: int
) -> set[int]:
    """Subject-fallback messages under pk choose again (its Date, subject or ids changed); their new
    parents' threads.

    subject_norm and date are pk's before the change: its subject children lie in that window.
    """
    if days <= 0 or not subject_norm:
        return set()
    joined: set[int] = set()
    for row in _same_subject_after(conn, list_id, subject_norm, date, pk, days):
        if row.pref_parent_id != pk:
            continue
        near = nearest_earlier(conn, list_id, subject_norm, row.thread_date, row.message_id, days)
        if near is None or near.id != pk:
            set_parent(conn, row.id, None if near is None else near.id)
            joined |= set() if near is None else {near.thread_id}
    return joined


def regroup(session: Session, list_id: int, thread_ids: set[int]) -> set[int]:
    """After links moved, threads are the connected parts of their links again; the threads touched.

    A thread whose messages came apart keeps its largest part (the others become threads of
    their own); parts now joined merge; placeholders nothing names any more are forgotten.
    """
    conn = session.connection()
    places.forget(session)
    nodes, near = _links(conn, thread_ids)
    parts: list[set[str]] = []
    placed: set[str] = set()
    for msgid in sorted(nodes):
        if msgid not in placed:
            parts.append(_reach(near, msgid) & nodes.keys())
            placed |= parts[-1]
    # the threads holding each part once the splits are done
    holders: list[set[int]] = [set() for _ in parts]
    strays: list[tuple[int, set[str]]] = []  # placeholders in a thread none of their namers is in
    for thread_id in thread_ids:
        pieces = []  # (part, its ids in this thread, its messages in this thread)
        for n, part in enumerate(parts):
            ids = {m for m in part if nodes[m][1] == thread_id}
            pks = {pk for m in ids if (pk := nodes[m][0]) is not None}
            if pks:
                pieces.append((n, ids, pks))
            elif ids:
                strays.append((n, ids))
        if pieces:
            keep = max(pieces, key=lambda piece: (len(piece[2]), -min(piece[2])))[0]
            for n, ids, pks in pieces:
                holders[n].add(
                    thread_id if n == keep else conversations.split(session, pks, ids, thread_id)
                )
    touched = set(thread_ids) | {t for held in holders for t in held}
    for held in holders:
        if len(held) > 1:
            touched.add(conversations.merge(session, held).id)
    for (
        n,
        ids,
    ) in (
        strays
    ):  # a placeholder nothing names any more is forgotten; else it goes where its namers are
        live = conversations.resolve(session, min(holders[n])) if holders[n] else None
        stray = _NODES.c.list_id == list_id, _NODES.c.msgid.in_(ids)
        conn.execute(
            delete(_NODES).where(*stray)
            if live is None
            else update(_NODES).where(*stray).values(thread_id=live.id)
        )
    return touched
