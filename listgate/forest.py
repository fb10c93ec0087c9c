"""Parent edges: chosen from every id a mail names, else by subject; loops cut where the Date is earliest.

Every choice is a function of message content (the ids a message names, which of them are
archived and what those name in turn; subjects and dates), never of arrival order, so a
list's forest depends only on the set of messages it holds. A message stores the parent its
headers choose (pref_parent_id); parent_id is the same except on the one message of a loop
whose edge is cut: the member with the earliest (Date, Message-ID).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from listgate import conversations
from listgate.models import Message, MessageRef, ThreadNode

MAX_DEPTH = 10_000  # the bound on any walk up a chain of parents
MIN_KEY_LENGTH = 4  # shorter ids ("<a@b>") are junk, never thread keys
_M = Message.__table__
_REFS = MessageRef.__table__
_NODES = ThreadNode.__table__
Named = Sequence[tuple[str, int]]  # (id, place in In-Reply-To or 0), References order then In-Reply-To's others


@dataclass(frozen=True)
class Keys:
    """The thread keys a message names, junk left out: In-Reply-To's ids and References' ids, in order."""

    irt: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()

    @property
    def named(self) -> list[tuple[str, int]]:
        """Every key once: References order, then In-Reply-To ids not in References; with In-Reply-To places."""
        place = {k: i + 1 for i, k in enumerate(self.irt)}
        return [(k, place.get(k, 0)) for k in dict.fromkeys(self.refs + self.irt)]


def is_thread_key(token: str) -> bool:
    """True for an id that can join threads: local@domain, both parts present, not absurdly short."""
    local, at, domain = token.rpartition("@")
    return bool(at and local and domain) and len(token) >= MIN_KEY_LENGTH


def thread_keys(own: str, in_reply_to: Iterable[str], references: Iterable[str]) -> Keys:
    """The keys of a message from its parsed headers; its own id, repeats and junk tokens dropped."""
    def keep(ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for i in ids if i != own and is_thread_key(i)))

    return Keys(irt=keep(in_reply_to)[:20], refs=keep(references)[-200:])  # bounds against junk


def choose_parent(named: Named, archived: Mapping[str, int], declared: Mapping[int, Iterable[str]]) -> tuple[int | None, int]:
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


def declared_ids(conn: Connection, pks: Iterable[int]) -> dict[int, set[str]]:
    """The ids each of these messages names."""
    out: dict[int, set[str]] = {}
    for pk, ref in conn.execute(select(_REFS.c.message_pk, _REFS.c.ref).where(_REFS.c.message_pk.in_(list(pks)))):
        out.setdefault(pk, set()).add(ref)
    return out


def header_parent(conn: Connection, named: Named, archived: Mapping[str, int]) -> tuple[int | None, int]:
    """choose_parent, reading what the candidates name only when there is a choice to make."""
    candidates = [(k, irt) for k, irt in named if k in archived]
    pool = [k for k, irt in candidates if irt] or [k for k, _ in candidates]  # In-Reply-To's first, as chosen
    if len(pool) < 2:
        return choose_parent(named, archived, {})
    return choose_parent(named, archived, declared_ids(conn, {archived[k] for k, _ in candidates}))


_NAMERS = select(_REFS.c.message_pk, _REFS.c.ref, _REFS.c.in_reply_to).where(
    _REFS.c.message_pk.in_(select(_REFS.c.message_pk).where(
        _REFS.c.list_id == bindparam("list_id"), _REFS.c.ref == bindparam("ref"), _REFS.c.message_pk != bindparam("pk")))
).order_by(_REFS.c.message_pk, _REFS.c.position)


def reparent_namers(session: Session, msg_pk: int, msgid: str, list_id: int) -> set[int]:
    """Messages that name a newly archived id choose again (it may be nearer); the threads touched."""
    conn = session.connection()
    rows = conn.execute(_NAMERS, {"list_id": list_id, "ref": msgid, "pk": msg_pk}).all()
    if not rows:
        return set()
    named: dict[int, list[tuple[str, int]]] = {}
    for pk, ref, irt in rows:
        named.setdefault(pk, []).append((ref, irt))
    archived = dict(conn.execute(select(_NODES.c.msgid, _NODES.c.message_pk).where(
        _NODES.c.list_id == list_id, _NODES.c.msgid.in_({r.ref for r in rows}), _NODES.c.message_pk.is_not(None))).all())
    pks = set(archived.values())
    declared = declared_ids(conn, pks) if len(pks) > 1 else {}
    touched: set[int] = set()
    for pk, ids in named.items():
        parent, pos = choose_parent(ids, archived, declared)
        touched |= set_parent(conn, pk, parent, pos)
    return touched


_ROW = select(_M.c.id, _M.c.pref_parent_id, _M.c.parent_id, _M.c.date, _M.c.message_id, _M.c.thread_id).where(
    _M.c.id == bindparam("pk"))


def set_parent(conn: Connection, pk: int, parent: int | None, pos: int = -1) -> set[int]:
    """Give a message a new chosen parent, keeping every loop cut at its earliest member; the threads touched."""
    me = conn.execute(_ROW, {"pk": pk}).one()
    if me.pref_parent_id == parent:
        return set()
    touched = {me.thread_id}
    if me.pref_parent_id is not None:
        loop = _walk(conn, me.pref_parent_id, pk)
        for row in loop or ():  # that loop is open now: its cut edge comes back
            if row.parent_id is None and row.pref_parent_id is not None:
                conn.execute(update(_M).where(_M.c.id == row.id).values(parent_id=row.pref_parent_id))
    conn.execute(update(_M).where(_M.c.id == pk).values(pref_parent_id=parent, parent_id=parent, parent_pos=pos))
    loop = _walk(conn, parent, pk) if parent is not None else None
    if loop is not None:
        cut = min([*loop, me], key=lambda r: (r.date, r.message_id))
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


def nearest_earlier(conn: Connection, list_id: int, subject_norm: str, date: datetime, msgid: str,
                    days: int) -> Any | None:
    """The subject fallback's parent: the latest message of that subject before this one, within days.

    "Before" is by (Date, Message-ID), the Message-IDs compared here in Python: database
    collations order strings differently, and every such comparison must agree.
    """
    names_me = exists().where(_REFS.c.message_pk == _M.c.id, _REFS.c.ref == msgid)  # a reply to it is no parent
    same = (_M.c.list_id == list_id, _M.c.subject_norm == subject_norm, ~names_me)
    pick = select(_M.c.id, _M.c.thread_id, _M.c.message_id)
    ties = [r for r in conn.execute(pick.where(*same, _M.c.date == date)) if r.message_id < msgid]
    if ties:
        return max(ties, key=lambda r: r.message_id)
    latest = conn.execute(select(func.max(_M.c.date)).where(
        *same, _M.c.date < date, _M.c.date >= date - timedelta(days=days))).scalar()
    if latest is None:
        return None
    return max(conn.execute(pick.where(*same, _M.c.date == latest)), key=lambda r: r.message_id)


_PARENT = _M.alias("parent")
_REHANG = (select(_M.c.id, _M.c.thread_id, _M.c.message_id, _M.c.date, _PARENT.c.message_id.label("p_msgid"),
                  _PARENT.c.date.label("p_date"))
           .outerjoin(_PARENT, _PARENT.c.id == _M.c.pref_parent_id)
           .where(_M.c.list_id == bindparam("list_id"), _M.c.subject_norm == bindparam("subject_norm"),
                  _M.c.by_subject.is_(True), _M.c.date >= bindparam("lo"), _M.c.date <= bindparam("hi"),
                  _M.c.id != bindparam("pk")))


def rehang_by_subject(session: Session, new: Any, days: int) -> set[int]:
    """Subject-fallback messages for which the new message is nearer than their parent move under it."""
    if days <= 0 or not new.subject_norm:
        return set()
    conn = session.connection()
    rows = conn.execute(_REHANG, {"list_id": new.list_id, "subject_norm": new.subject_norm, "lo": new.date,
                                  "hi": new.date + timedelta(days=days), "pk": new.id}).all()
    mine, named = (new.date, new.message_id), {k for k, _ in new.extra.get("named", ())}
    touched: set[int] = set()
    for row in rows:
        if mine < (row.date, row.message_id) and row.message_id not in named and (
                row.p_msgid is None or (row.p_date, row.p_msgid) < mine):
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
    """(message pks, ids) of the part of a thread joined to start (whose subject link was just moved away)."""
    nodes = dict(conn.execute(select(_NODES.c.msgid, _NODES.c.message_pk).where(_NODES.c.thread_id == thread_id)).all())
    edges: set[tuple[str, str]] = set()
    for a, b in conn.execute(select(_M.c.message_id, _REFS.c.ref).join(_REFS, _REFS.c.message_pk == _M.c.id)
                             .where(_M.c.thread_id == thread_id)):
        edges.add((a, b))
    for a, b in conn.execute(select(_M.c.message_id, _PARENT.c.message_id).join(_PARENT, _PARENT.c.id == _M.c.pref_parent_id)
                             .where(_M.c.thread_id == thread_id, _M.c.by_subject.is_(True))):
        edges.add((a, b))
    near: dict[str, set[str]] = {}
    for a, b in edges:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)
    seen, queue = {start}, deque([start])
    while queue:
        for other in near.get(queue.popleft(), ()):
            if other not in seen:
                seen.add(other)
                queue.append(other)
    seen &= nodes.keys()  # the moved link's new end lies in another thread
    return {nodes[m] for m in seen if nodes[m] is not None}, seen
