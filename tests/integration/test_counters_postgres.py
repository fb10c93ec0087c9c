"""Counters on PostgreSQL: the upsert adds up, also from concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from listgate import counters
from listgate.db import make_engine, session_factory, transaction


def test_concurrent_bumps_all_count(pg_settings) -> None:  # type: ignore[no-untyped-def]
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


def test_a_writer_holding_a_stale_list_does_not_lose_another_writers_count(pg_settings) -> None:  # type: ignore[no-untyped-def]
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
        first.commit(), second.commit()  # the objects stay loaded (expire_on_commit=False)
        for n, (session, mlist) in enumerate(zip((first, second), stale, strict=True)):
            with session.begin():
                ingest(session, parse(post(n)), mlist, domain="lists.test")
            session.close()
        with transaction(factory) as session:
            mlist = lists.require(session, "dev")
            assert (mlist.message_count, mlist.thread_count) == (2, 2)
    finally:
        engine.dispose()
