"""Counters on PostgreSQL: the upsert adds up, also from concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from listgate import counters
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction


def test_concurrent_bumps_all_count(pg_settings: Settings) -> None:
    engine = make_engine(pg_settings)
    factory = session_factory(engine)

    def bump(i: int) -> None:
        with transaction(factory) as session:
            counters.bump(session, counters.REFUSED, "unknown-list" if i % 2 else "too-big")

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(bump, range(40)))
        with transaction(factory) as session:
            assert counters.values(session, counters.REFUSED) == {"unknown-list": 20, "too-big": 20}
    finally:
        engine.dispose()


def test_a_writer_holding_a_stale_list_does_not_lose_another_writers_count(
    pg_settings: Settings,
) -> None:
    """Two gateways' sessions read the list, both post: the list shows two posts, not one."""
    from listgate import lists
    from listgate.ingest import ingest
    from listgate.mail.parser import parse

    engine = make_engine(pg_settings)
    factory = session_factory(engine)

    def post(n: int) -> bytes:
        return (
            f"From: a@example.org\r\nTo: dev@lists.test\r\nMessage-ID: <p{n}@x>\r\n"
            f"Subject: post {n}\r\n\r\nbody {n}\r\n"
        ).encode()

    try:
        with transaction(factory) as session:
            lists.create(session, "dev")
        first, second = factory(), factory()
        stale = [lists.require(s, "dev") for s in (first, second)]  # both read the list (0 posts)
        first.commit()  # the objects stay loaded (expire_on_commit=False)
        second.commit()
        for n, (session, mlist) in enumerate(zip((first, second), stale, strict=True)):
            with session.begin():
                ingest(session, parse(post(n)), mlist, domain="lists.test")
            session.close()
        with transaction(factory) as session:
            mlist = lists.require(session, "dev")
            assert (mlist.message_count, mlist.thread_count) == (2, 2)
    finally:
        engine.dispose()


def test_a_takedown_during_an_archiving_batch_is_not_undone_by_its_counts(
    pg_settings: Settings,
) -> None:
    """The archiver reads a thread's counts at the start of a batch (after the list lock) and
    writes them at the batch's flush; a moderator's takedown committed in between must not be
    overwritten: the thread and the list show the posts that are still visible.
    """
    import threading

    from listgate import lists, removal
    from listgate.ingest import ingest
    from listgate.mail.parser import parse
    from listgate.models import Message, Thread
    from listgate.states import PostState
    from listgate.store import lock_list

    def post(n: int, parent: int | None) -> bytes:
        reply = f"In-Reply-To: <t{parent}@x>\r\n" if parent is not None else ""
        return (
            f"From: a@example.org\r\nTo: dev@lists.test\r\nMessage-ID: <t{n}@x>\r\n{reply}"
            f"Subject: topic\r\n\r\nbody {n}\r\n"
        ).encode()

    engine = make_engine(pg_settings)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            mlist = lists.create(session, "dev")
            for n, parent in ((0, None), (1, 0), (2, 0)):
                ingest(session, parse(post(n, parent)), mlist, domain="lists.test")
        archiver = factory()
        archiver.begin()
        mlist = lists.require(archiver, "dev")
        lock_list(archiver, mlist)  # what a batch does first, then it reads the thread
        thread = archiver.scalars(select(Thread).where(Thread.list_id == mlist.id)).one()
        assert thread.message_count == 3

        def take_down() -> None:
            with transaction(factory) as session:
                msg = session.scalars(select(Message).where(Message.message_id == "t1@x")).one()
                removal.remove(session, [msg], "off-topic", "mod@example.org")

        moderator = threading.Thread(target=take_down)
        moderator.start()
        moderator.join(timeout=2)  # done at once unless it waits for the batch's list lock
        ingest(archiver, parse(post(3, 0)), mlist, domain="lists.test")
        archiver.commit()
        archiver.close()
        moderator.join(timeout=30)
        assert not moderator.is_alive()
        with transaction(factory) as session:
            visible = session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.list_id == mlist.id, Message.status == PostState.VISIBLE)
            )
            thread = session.scalars(select(Thread).where(Thread.list_id == mlist.id)).one()
            shown = lists.require(session, "dev")
            assert visible == 3
            assert (thread.message_count, shown.message_count) == (3, 3)
    finally:
        engine.dispose()
