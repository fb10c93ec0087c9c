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
