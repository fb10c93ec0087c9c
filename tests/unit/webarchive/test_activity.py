"""A list's activity: its statements keep their plan on an archive fed only by mail (no planner
statistics), and its counts stay right through hidden roots, late parents and merged threads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, reports
from listgate.db import transaction
from listgate.models import Message, Thread
from tests.support.factories import MakeList, make_mail, post
from webarchive.reading.talk import list_activity

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = MONDAY + timedelta(days=20)


def _statements(engine: Engine, db: sessionmaker[Session]) -> list[tuple[str, Any]]:
    """The statements the activity of "dev" runs, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with db() as session:
            list_activity(session, lists.require(session, "dev"), NOW)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return [(s, p) for s, p in seen if "FROM messages" in s]


def test_activity_probes_threads_by_key_on_an_archive_without_statistics(
    engine: Engine, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    for n in range(30):  # a few threads of a few posts: the planner has rows but no statistics
        post(db, make_mail(f"Topic {n}", msgid=f"t{n}@x", date=MONDAY + timedelta(hours=n)))
        post(
            db,
            make_mail(
                f"Re: Topic {n}",
                msgid=f"r{n}@x",
                in_reply_to=f"t{n}@x",
                date=MONDAY + timedelta(hours=n, minutes=5),
            ),
        )
    # no statistics yet: an archive fed by mail gets them only after its first hour (keep_fresh)
    assert "sqlite_stat1" not in inspect(engine).get_table_names()
    statements = _statements(engine, db)
    joined = [(s, p) for s, p in statements if "JOIN threads" in s]
    assert len(joined) == 2  # the new threads of each week, the month's busiest threads
    with engine.connect() as conn:
        for statement, params in joined:
            plan = [
                row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            ]
            on_threads = [step for step in plan if " threads" in f" {step}"]
            assert on_threads, plan
            # each row of messages finds its thread by key, never by reading the threads table
            assert all(
                step.startswith("SEARCH threads USING INTEGER PRIMARY KEY") for step in on_threads
            ), plan


@pytest.fixture
def history(db: sessionmaker[Session], make_list: MakeList) -> None:
    """Posts over three weeks: a plain thread, a thread whose root is hidden, a reply arriving
    before its parent, two threads a late reply merges, a reply a nearer post takes to its own
    thread."""
    make_list("dev")

    def at(days: float) -> datetime:
        return MONDAY + timedelta(days=days)

    def send(
        subject: str, msgid: str, days: float, sender: str = "Ann <ann@x.test>", **kw: Any
    ) -> int:
        result = post(db, make_mail(subject, msgid=msgid, date=at(days), sender=sender, **kw))
        assert result.message_pk is not None
        return result.message_pk

    # week 1 (2 March): a plain thread of three posts
    send("Plain", "p0@x", 0)
    send("Re: Plain", "p1@x", 0.1, "Ben <ben@x.test>", in_reply_to="p0@x")
    send("Re: Plain", "p2@x", 0.2, "Cy <cy@x.test>", in_reply_to="p1@x")
    # week 1: a thread whose root is hidden later; its reply stays
    hidden = send("Hush", "h0@x", 1)
    send("Re: Hush", "h1@x", 1.1, "Ben <ben@x.test>", in_reply_to="h0@x")
    # week 2 (9 March): the reply arrives first, its parent (dated before it) later
    send("Re: Late", "l1@x", 7.5, "Ben <ben@x.test>", in_reply_to="l0@x")
    send("Late", "l0@x", 7, "Cy <cy@x.test>")
    # week 2 then 3: two threads; a late reply names both and merges them
    send("Alpha", "a0@x", 8)
    send("Re: Alpha", "a1@x", 8.1, "Ben <ben@x.test>", in_reply_to="a0@x")
    send("Beta", "b0@x", 14, "Cy <cy@x.test>")
    send("Re: Beta", "b1@x", 14.1, in_reply_to="b0@x")
    send("Re: Beta", "b2@x", 14.2, in_reply_to="b0@x")
    send("Re: Alpha", "ab@x", 15, "Cy <cy@x.test>", in_reply_to="b0@x", references=["a0@x", "b0@x"])
    # week 3: a subject-only reply hangs under Gamma; a later-arriving Gamma post (of its own
    # thread) dated between them is nearer: the reply moves to that thread
    send("Gamma", "g0@x", 15.5, "Dee <dee@x.test>")
    send("Re: Gamma", "g2@x", 16.5, "Dee <dee@x.test>")
    send("Gamma", "g1@x", 16, "Dee <dee@x.test>")
    with transaction(db) as session:
        reports.hide(session, session.get_one(Message, hidden))


def test_activity_counts_posts_and_new_threads_per_week_and_the_months_tops(
    db: sessionmaker[Session], history: None
) -> None:
    with db() as session:
        thread: dict[str, int] = dict(
            session.execute(select(Message.message_id, Message.thread_id)).all()
        )
        # Beta's thread joined Alpha's: one thread redirects to the other
        assert thread["a0@x"] == thread["b0@x"] == thread["ab@x"]
        assert session.scalars(select(Thread.merged_into_id)).all().count(thread["a0@x"]) == 1
        # the subject-only reply went over to the nearer Gamma post's thread
        assert thread["g2@x"] == thread["g1@x"] != thread["g0@x"]
        activity = list_activity(session, lists.require(session, "dev"), NOW)
    weeks = {w.date().isoformat(): (posts, new) for w, posts, new in activity.weeks if posts}
    assert weeks == {
        # Plain (3) and Hush's reply (1); only Plain starts a visible thread: Hush's root is hidden
        "2026-03-02": (4, 1),
        # Late and its early reply (2, one thread), Alpha's two posts (a thread, merged later)
        "2026-03-09": (4, 2),
        # Beta's three posts and the merging reply: Beta's thread joined Alpha's, no new thread;
        # three Gamma posts in two threads
        "2026-03-16": (7, 2),
    }
    assert activity.month == datetime(2026, 3, 1, tzinfo=UTC)
    assert [(subject, posts) for _, subject, posts in activity.top_threads] == [
        ("Alpha", 6),
        ("Plain", 3),
        ("Late", 2),
        ("Gamma", 2),  # the later Gamma thread and the reply that moved to it
        ("Hush", 1),  # a hidden root leaves the thread its subject
        ("Gamma", 1),
    ]
    # hidden posts do not count; ties go by who posted last, earliest first
    assert [(name, posts) for name, posts, _ in activity.top_people] == [
        ("Ben", 4),
        ("Ann", 4),
        ("Cy", 4),
        ("Dee", 3),
    ]
