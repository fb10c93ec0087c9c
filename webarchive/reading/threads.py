"""Reading the archive: keyset pages of threads and a whole thread in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from listgate.models import Attachment, MailingList, Message, MessageVariant, Thread
from listgate.models.archive import HIDDEN, REMOVED, VISIBLE
from listgate.models.web import OPEN, Report, Vote


class BadCursor(ValueError):
    """A pagination cursor that was not made by us."""


@dataclass
class Node:
    """A visible message placed in its thread: depth and nearest visible ancestor."""

    message: Message
    depth: int = 0
    parent: Message | None = None
    attachments: list[Attachment] = field(default_factory=list)
    votes_yes: int = 0
    votes_total: int = 0
    my_vote: bool | None = None
    variants: list[MessageVariant] = field(default_factory=list)  # other messages with its Message-ID
    number: int | None = None  # #1…#N by date in the thread page
    parent_number: int | None = None
    reported: bool = False  # open reports: a neutral marker for everyone
    new: bool = False  # arrived since the signed-in reader's last visit

    @property
    def hidden(self) -> bool:
        """A post hidden after reports: shown as a placeholder that keeps the thread's shape."""
        return self.message.status != VISIBLE


def encode_cursor(when: datetime, pk: int) -> str:
    """An opaque keyset cursor: microseconds since the epoch and an id."""
    micros = round(when.astimezone(timezone.utc).timestamp() * 1_000_000)
    return f"{micros}_{pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, id) in a cursor, or BadCursor."""
    micros, sep, pk = cursor.partition("_")
    try:
        if not sep:
            raise ValueError
        when = datetime.fromtimestamp(int(micros) / 1_000_000, tz=timezone.utc)
        return when, int(pk)
    except (ValueError, OverflowError, OSError):
        raise BadCursor(f"cursor {cursor[:40]!r} is not valid; use the 'next' value of a previous answer") from None


def thread_page(session: Session, mlist: MailingList, limit: int, cursor: str | None,
                featured: bool | None = None) -> tuple[list[Thread], str | None]:
    """Threads of a list by last activity (newest first) after cursor, and the next cursor."""
    query = select(Thread).where(
        Thread.list_id == mlist.id, Thread.merged_into_id.is_(None), Thread.message_count > 0
    )
    if featured is not None:
        query = query.where(Thread.featured.is_(featured))
    if cursor:
        when, pk = decode_cursor(cursor)
        query = query.where(or_(Thread.last_activity < when, and_(Thread.last_activity == when, Thread.id < pk)))
    rows = list(session.scalars(query.order_by(Thread.last_activity.desc(), Thread.id.desc()).limit(limit + 1)))
    nxt = encode_cursor(rows[limit - 1].last_activity, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], nxt


def order_thread(messages: list[Message], placeholders: bool = False) -> list[Node]:
    """Visible messages depth first, siblings by date; hidden ancestors are skipped over.

    Removed posts stay in place as tombstones, so their replies keep their place too. With
    placeholders, posts hidden after reports keep their place as well (the page shows a
    placeholder), so their replies are not lifted to the top.
    """
    by_pk = {m.id: m for m in messages}
    shown = (VISIBLE, REMOVED, HIDDEN) if placeholders else (VISIBLE, REMOVED)
    visible = {m.id for m in messages if m.status in shown}

    def visible_parent(msg: Message) -> int | None:
        seen: set[int] = set()
        pk = msg.parent_id
        while pk is not None and pk in by_pk and pk not in visible and pk not in seen:
            seen.add(pk)
            pk = by_pk[pk].parent_id
        return pk if pk in visible else None

    children: dict[int | None, list[Message]] = {}
    for msg in messages:
        if msg.id in visible:
            children.setdefault(visible_parent(msg), []).append(msg)
    for group in children.values():
        group.sort(key=lambda m: (m.date, m.id))
    out: list[Node] = []
    placed: set[int] = set()
    stack: list[tuple[Message, int, Message | None]] = [(m, 0, None) for m in reversed(children.get(None, []))]
    while stack:
        msg, depth, parent = stack.pop()
        if msg.id in placed:
            continue
        placed.add(msg.id)
        out.append(Node(msg, depth, parent))
        stack.extend((c, depth + 1, msg) for c in reversed(children.get(msg.id, [])))
    # A cycle in bad data leaves messages unreachable from a root: show them at the end.
    out.extend(Node(by_pk[pk]) for pk in sorted(visible - placed, key=lambda p: (by_pk[p].date, p)))
    return out


def thread_nodes(session: Session, thread: Thread, voter: str | None = None, placeholders: bool = False) -> list[Node]:
    """The thread's visible posts in thread order, with attachments, votes and reports: five queries at most."""
    messages = list(session.scalars(select(Message).where(Message.thread_id == thread.id)))
    nodes = order_thread(messages, placeholders)
    fill_nodes(session, nodes, voter)
    return nodes


def number(nodes: list[Node]) -> None:
    """Number the posts #1…#N by date (placeholders too, so numbers stay put when a post is hidden)."""
    by_date = sorted(nodes, key=lambda n: (n.message.date, n.message.id))
    numbers = {n.message.id: i for i, n in enumerate(by_date, 1)}
    for n in nodes:
        n.number = numbers[n.message.id]
        n.parent_number = numbers.get(n.parent.id) if n.parent is not None else None


def fill_nodes(session: Session, nodes: list[Node], voter: str | None = None) -> None:
    """Attach attachments, variants and vote counts to nodes with one query each."""
    pks = [n.message.id for n in nodes if n.message.status == VISIBLE]  # a tombstone shows none of its post
    if not pks:
        return
    index = {n.message.id: n for n in nodes}
    for att in session.scalars(select(Attachment).where(Attachment.message_pk.in_(pks)).order_by(Attachment.position)):
        index[att.message_pk].attachments.append(att)
    for variant in session.scalars(select(MessageVariant).where(MessageVariant.message_pk.in_(pks)).order_by(MessageVariant.id)):
        index[variant.message_pk].variants.append(variant)
    yes = func.sum(case((Vote.valuable.is_(True), 1), else_=0))
    votes = select(Vote.message_pk, func.count(), yes).where(Vote.message_pk.in_(pks)).group_by(Vote.message_pk)
    reports = (select(Report.message_pk, literal(-1), literal(0))
               .where(Report.message_pk.in_(pks), Report.status == OPEN).group_by(Report.message_pk))
    for pk, total, valuable in session.execute(union_all(votes, reports)):  # one round trip for both
        if total < 0:
            index[pk].reported = True
        else:
            index[pk].votes_total, index[pk].votes_yes = total, int(valuable or 0)
    if voter:
        for pk, valuable in session.execute(
            select(Vote.message_pk, Vote.valuable).where(Vote.message_pk.in_(pks), Vote.address == voter)
        ):
            index[pk].my_vote = valuable


def find_message(session: Session, message_id: str, list_ids: set[int] | None) -> Message | None:
    """A visible message by Message-ID among readable lists (the oldest copy when cross-posted)."""
    query = select(Message).where(Message.message_id == message_id, Message.status == VISIBLE)
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
        if parent.status == VISIBLE:
            return parent
        pk = parent.parent_id
    return None
