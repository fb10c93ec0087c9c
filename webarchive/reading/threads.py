"""Reading the archive: keyset pages of threads, and a whole thread in a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from listgate.models import Attachment, MailingList, Message, MessageVariant, Thread
from listgate.models.web import Report, Vote
from listgate.states import PostState, ReportState
from webarchive.ids import signed, whole

_Row = TypeVar("_Row", Attachment, MessageVariant)


class BadCursor(ValueError):
    """A pagination cursor that was not made by us."""


@dataclass(slots=True)
class Node:
    """A visible message placed in its thread: depth and nearest visible ancestor."""

    message: Message
    depth: int = 0
    parent: Message | None = None
    attachments: Sequence[Attachment] = ()  # a list once filled (few posts have any: no list each)
    votes_yes: int = 0
    votes_total: int = 0
    my_vote: bool | None = None
    variants: Sequence[MessageVariant] = ()  # other messages with its Message-ID
    number: int | None = None  # #1…#N by date in the thread
    parent_number: int | None = None
    reported: bool = False  # open reports: a neutral marker for everyone
    new: bool = False  # arrived since the signed-in reader's last visit

    @property
    def hidden(self) -> bool:
        """A post hidden after reports: shown as a placeholder that keeps the thread's shape."""
        return self.message.status != PostState.VISIBLE


MAX_MICROS = 253_402_300_800 * 1_000_000  # 10000-01-01 in microseconds: past any datetime


def encode_cursor(when: datetime, pk: int) -> str:
    """An opaque keyset cursor: microseconds since the epoch and an id."""
    micros = round(when.astimezone(UTC).timestamp() * 1_000_000)
    return f"{micros}_{pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, id) in a cursor, or BadCursor."""
    micros, sep, raw_pk = cursor.partition("_")
    try:
        pk = whole(raw_pk)  # an id we never made would overflow the database's column
        number = signed(micros, MAX_MICROS)
        if not sep or pk is None or number is None:
            raise ValueError
        return datetime.fromtimestamp(number / 1_000_000, tz=UTC), pk
    except (ValueError, OverflowError, OSError):
        raise BadCursor(
            f"cursor {cursor[:40]!r} is not valid; use the 'next' value of a previous answer"
        ) from None


def thread_page(
    session: Session,
    mlist: MailingList,
    limit: int,
    cursor: str | None,
    featured: bool | None = None,
) -> tuple[list[Thread], str | None]:
    """Threads of a list by last activity (newest first) after cursor, and the next cursor."""
    query = select(Thread).where(
        Thread.list_id == mlist.id, Thread.merged_into_id.is_(None), Thread.message_count > 0
    )
    if featured is not None:
        query = query.where(Thread.featured.is_(featured))
    if cursor:
        when, pk = decode_cursor(cursor)
        query = query.where(
            or_(Thread.last_activity < when, and_(Thread.last_activity == when, Thread.id < pk))
        )
    rows = list(
        session.scalars(
            query.order_by(Thread.last_activity.desc(), Thread.id.desc()).limit(limit + 1)
        )
    )
    nxt = (
        encode_cursor(rows[limit - 1].last_activity, rows[limit - 1].id)
        if len(rows) > limit
        else None
    )
    return rows[:limit], nxt


def order_thread(messages: list[Message], placeholders: bool = False) -> list[Node]:
    """Visible messages depth first, siblings by date; hidden ancestors are skipped over.

    Removed posts stay in place as tombstones, so their replies keep their place too. With
    placeholders, posts hidden after reports keep their place as well (the page shows a
    placeholder), so their replies are not lifted to the top.
    """
    shown = (
        (PostState.VISIBLE, PostState.REMOVED, PostState.HIDDEN)
        if placeholders
        else (PostState.VISIBLE, PostState.REMOVED)
    )
    parent_of: dict[int, int | None] = {}
    # the shown messages by date: siblings come out in this order
    rows: list[tuple[int, Message]] = []
    for m in sorted(messages, key=lambda m: (m.date, m.id)):
        parent_of[m.id] = m.parent_id
        if m.status in shown:
            rows.append((m.id, m))
    # #1…#N by date: placeholders too, so numbers stay put
    rank = {pk: i for i, (pk, _m) in enumerate(rows, 1)}
    visible = rank.keys()

    def visible_parent(pk: int) -> int | None:
        up = parent_of[pk]
        if up is None or up in visible:
            return up
        seen: set[int] = set()
        while up is not None and up in parent_of and up not in visible and up not in seen:
            seen.add(up)
            up = parent_of[up]
        return up if up in visible else None

    children: dict[int | None, list[tuple[int, Message]]] = {}
    for pk, m in rows:
        children.setdefault(visible_parent(pk), []).append((pk, m))
    out: list[Node] = []
    placed: set[int] = set()
    stack: list[tuple[int, Message, int, Message | None]] = [
        (pk, m, 0, None) for pk, m in reversed(children.get(None, []))
    ]
    while stack:
        pk, msg, depth, parent = stack.pop()
        if pk in placed:
            continue
        placed.add(pk)
        out.append(
            Node(
                msg,
                depth,
                parent,
                number=rank[pk],
                parent_number=rank[parent.id] if parent else None,
            )
        )
        kids = children.get(pk)
        if kids:
            stack.extend([(k, c, depth + 1, msg) for k, c in reversed(kids)])
    # A cycle in bad data leaves messages unreachable from a root: show them at the end, by date.
    if len(placed) < len(rows):
        out.extend(Node(m, number=rank[pk]) for pk, m in rows if pk not in placed)
    return out


def thread_nodes(
    session: Session, thread: Thread, voter: str | None = None, placeholders: bool = False
) -> list[Node]:
    """The thread's visible posts in thread order, with votes, reports and variants.

    Two queries, three when there are variants.
    """
    messages = list(session.scalars(select(Message).where(Message.thread_id == thread.id)))
    nodes = order_thread(messages, placeholders)
    fill_nodes(session, nodes, voter, thread.id)
    return nodes


_REPORTED, _VARIANT = -1, -2  # markers in the count column of _facts


def _facts(scope: Select[int] | BindParameter[list[int]]) -> CompoundSelect[int, int, int, int]:
    """Votes (the voter's own: 2 yes, 1 no), open reports and variants of the posts in scope.

    One statement for the three.
    """
    yes = func.sum(case((Vote.valuable.is_(True), 1), else_=0))
    mine = func.max(
        case(
            (Vote.address == bindparam("voter"), case((Vote.valuable.is_(True), 2), else_=1)),
            else_=0,
        )
    )
    votes = (
        select(Vote.message_pk, func.count(), yes, mine)
        .where(Vote.message_pk.in_(scope))
        .group_by(Vote.message_pk)
    )
    reports = (
        select(Report.message_pk, literal(_REPORTED), literal(0), literal(0))
        .where(Report.message_pk.in_(scope), Report.status == ReportState.OPEN)
        .group_by(Report.message_pk)
    )
    variants = select(
        MessageVariant.message_pk, literal(_VARIANT), MessageVariant.id, literal(0)
    ).where(MessageVariant.message_pk.in_(scope))
    return union_all(votes, reports, variants)


# Built once: a long thread is read often, and building the statement cost as much as running it.
_FACTS_OF_THREAD = _facts(
    select(Message.id).where(
        Message.thread_id == bindparam("thread_id"), Message.status == PostState.VISIBLE
    )
)
_FACTS_OF_POSTS = _facts(bindparam("pks", expanding=True))


def fill_nodes(
    session: Session, nodes: list[Node], voter: str | None = None, thread_id: int | None = None
) -> None:
    """Attach votes (the voter's own too), open reports and variants to the nodes of visible posts.

    One query for the three; variants, rare, are then loaded by id. With thread_id the posts are
    named by their thread, not listed one by one (a long thread would bind a parameter per post).
    """
    # a tombstone shows none of its post
    index = {n.message.id: n for n in nodes if n.message.status == PostState.VISIBLE}
    if not index:
        return
    if thread_id is None:
        rows = session.execute(_FACTS_OF_POSTS, {"pks": list(index), "voter": voter})
    else:
        rows = session.execute(_FACTS_OF_THREAD, {"thread_id": thread_id, "voter": voter})
    variant_ids = []
    for pk, total, value, own in rows:
        node = index.get(pk)
        if node is None:  # a post that became visible after the posts were read
            continue
        if total == _REPORTED:
            node.reported = True
        elif total == _VARIANT:
            variant_ids.append(value)
        else:
            node.votes_total, node.votes_yes = total, int(value or 0)
            node.my_vote = None if not own else own == 2
    if variant_ids:
        found = session.scalars(
            select(MessageVariant)
            .where(MessageVariant.id.in_(variant_ids))
            .order_by(MessageVariant.id)
        )
        for pk, variants in _by_post(found).items():
            index[pk].variants = variants


def fill_attachments(session: Session, nodes: list[Node]) -> None:
    """Attach their attachments to the nodes of visible posts (one query).

    Only posts rendered anew need them.
    """
    index = {n.message.id: n for n in nodes if n.message.status == PostState.VISIBLE}
    if index:
        found = session.scalars(
            select(Attachment)
            .where(Attachment.message_pk.in_(list(index)))
            .order_by(Attachment.position)
        )
        for pk, attachments in _by_post(found).items():
            index[pk].attachments = attachments


def _by_post(rows: Iterable[_Row]) -> dict[int, list[_Row]]:
    """Rows with a message_pk, grouped by it (in their order)."""
    groups: dict[int, list[_Row]] = {}
    for row in rows:
        groups.setdefault(row.message_pk, []).append(row)
    return groups


def find_message(session: Session, message_id: str, list_ids: set[int] | None) -> Message | None:
    """A visible message by Message-ID among readable lists (the oldest copy when cross-posted)."""
    query = select(Message).where(
        Message.message_id == message_id, Message.status == PostState.VISIBLE
    )
    if list_ids is not None:
        query = query.where(Message.list_id.in_(list_ids))
    return session.scalars(query.order_by(Message.id).limit(1)).first()


def nearest_visible_parent(session: Session, msg: Message) -> Message | None:
    """The nearest visible ancestor of msg, walking up through held or hidden posts."""
    pk, seen = msg.parent_id, set()
    while pk is not None and pk not in seen:
        seen.add(pk)
        parent = session.get(Message, pk)
        if parent is None:
            return None
        if parent.status == PostState.VISIBLE:
            return parent
        pk = parent.parent_id
    return None
