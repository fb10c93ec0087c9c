"""Who talks to whom: a thread's reply graph, a list's activity over time, one's correspondents.

Each is a few grouped queries over indexed columns (thread, list and date, author, parent),
so the pages cost about what a thread page costs; nothing here knows about HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session, aliased

from listgate.models import MailingList, Message, Thread
from listgate.states import PostState

WEEKS = 52
TOP = 10


@dataclass
class Person:
    """A participant: posts in the thread and a sample post to link their author page."""

    key: int
    name: str
    posts: int
    sample_pk: int


@dataclass
class Graph:
    """A thread's participants and the replies between them (undirected pairs, each way counted)."""

    people: list[Person]
    # (a, b) with a < b -> [replies a→b, replies b→a]
    pairs: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def edges(self) -> list[tuple[int, int, int, int]]:
        """(a, b, a→b, b→a), heaviest first."""
        rows = [(a, b, ab, ba) for (a, b), (ab, ba) in self.pairs.items()]
        return sorted(rows, key=lambda e: (-(e[2] + e[3]), e[0], e[1]))


def thread_graph(session: Session, thread_id: int) -> Graph:
    """Participants by posts (most first) and who replied to whom: one query over the thread."""
    rows = session.execute(
        select(Message.id, Message.parent_id, Message.from_addr, Message.from_name)
        .where(Message.thread_id == thread_id, Message.status == PostState.VISIBLE)
        .order_by(Message.date, Message.id)
    ).all()
    author_of: dict[int, str] = {}
    people: dict[str, Person] = {}  # keyed once they are ranked
    for pk, _parent, addr, name in rows:
        who = (addr or name or "someone").lower()
        author_of[pk] = who
        person = people.setdefault(who, Person(0, name or addr or "someone", 0, pk))
        person.posts += 1
        person.sample_pk = pk
    order = sorted(people, key=lambda w: (-people[w].posts, people[w].name.lower()))
    key = {w: i for i, w in enumerate(order)}
    for who, i in key.items():
        people[who].key = i
    graph = Graph([people[w] for w in order])
    for pk, parent, _addr, _name in rows:
        if parent is None or parent not in author_of or author_of[parent] == author_of[pk]:
            continue
        a, b = key[author_of[pk]], key[author_of[parent]]
        pair = graph.pairs.setdefault((min(a, b), max(a, b)), [0, 0])
        pair[0 if a < b else 1] += 1
    return graph


@dataclass
class Activity:
    """A list's weekly posts and new threads, and this month's busiest threads and people."""

    weeks: list[tuple[datetime, int, int]]  # (Monday 00:00 UTC, posts, new threads)
    month: datetime  # first day of the month the tops are about
    top_threads: list[tuple[int, str, int]]  # (thread id, subject, posts)
    top_people: list[tuple[str, int, int]]  # (name, posts, a sample post's pk)


def _monday(value: datetime) -> datetime:
    day = value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def list_activity(
    session: Session, mlist: MailingList, now: datetime, weeks: int = WEEKS
) -> Activity:
    """The `weeks` weeks up to the last post (or now); the tops of this or the last busy month."""
    end = min(now, mlist.last_activity or now)
    first = _monday(end) - timedelta(weeks=weeks - 1)
    buckets = {first + timedelta(weeks=i): [0, 0] for i in range(weeks)}
    in_list = (
        Message.list_id == mlist.id,
        Message.status == PostState.VISIBLE,
        Message.date >= first,
    )
    for (date,) in session.execute(select(Message.date).where(*in_list)):
        buckets.get(_monday(date), [0, 0])[0] += 1
    # A root is one of its thread's messages: the primary key finds each post's thread whatever
    # the planner knows (root_message_pk has no index), and a root is counted once, in the
    # thread that holds it (a merged-away thread has no root since migration 0012).
    roots = (
        select(Message.date)
        .join(Thread, (Thread.id == Message.thread_id) & (Thread.root_message_pk == Message.id))
        .where(*in_list)
    )
    for (date,) in session.execute(roots):
        buckets.get(_monday(date), [0, 0])[1] += 1
    month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if mlist.last_activity is not None and mlist.last_activity < month:
        month = mlist.last_activity.astimezone(UTC).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
    threads, people = _tops(session, mlist.id, month)
    return Activity([(w, p, t) for w, (p, t) in sorted(buckets.items())], month, threads, people)


def _tops(
    session: Session, list_id: int, month: datetime
) -> tuple[list[tuple[int, str, int]], list[tuple[str, int, int]]]:
    """The busiest threads and people of the month starting at `month`."""
    end = (month + timedelta(days=32)).replace(day=1)
    where = (
        Message.list_id == list_id,
        Message.status == PostState.VISIBLE,
        Message.date >= month,
        Message.date < end,
    )
    n = func.count().label("n")
    threads = session.execute(
        select(Message.thread_id, Thread.subject, n)
        .join(Thread, Thread.id == Message.thread_id)
        .where(*where)
        .group_by(Message.thread_id, Thread.subject)
        .order_by(n.desc(), Message.thread_id)
        .limit(TOP)
    ).all()
    people = session.execute(
        select(func.max(Message.from_name), n, func.max(Message.id))
        .where(*where)
        .group_by(Message.from_addr)
        .order_by(n.desc(), func.max(Message.id))
        .limit(TOP)
    ).all()
    return (
        [(thread_id, subject, posts) for thread_id, subject, posts in threads],
        [(name, posts, sample) for name, posts, sample in people],
    )


def correspondents(
    session: Session, list_id: int, address: str, limit: int = TOP
) -> list[tuple[str, int, int, int]]:
    """Whom address replies to and hears from most on a list.

    (name, replies to them, replies from them, a sample post's pk), most replies first.
    """
    child, parent = aliased(Message), aliased(Message)
    visible = (
        child.status == PostState.VISIBLE,
        parent.status == PostState.VISIBLE,
        child.list_id == list_id,
    )

    def replies(me: type[Message], them: type[Message]) -> Sequence[Row[str, str, int, int]]:
        """(their address, name, replies, a sample pk) of the replies between address and them."""
        return session.execute(
            select(them.from_addr, func.max(them.from_name), func.count(), func.max(them.id))
            .select_from(child)
            .join(parent, parent.id == child.parent_id)
            .where(me.from_addr == address, them.from_addr != address, *visible)
            .group_by(them.from_addr)
        ).all()

    to_them, from_them = replies(child, parent), replies(parent, child)
    people: dict[str, tuple[str, int, int, int]] = {}  # address -> (name, to, from, sample pk)
    for addr, name, count, pk in to_them:
        people[addr] = (name or addr, count, 0, pk)
    for addr, name, count, pk in from_them:
        known = people.get(addr)
        people[addr] = (
            (known[0], known[1], count, known[3]) if known else (name or addr, 0, count, pk)
        )
    ranked = sorted(people.values(), key=lambda e: (-(e[1] + e[2]), e[0].lower()))
    return ranked[:limit]
