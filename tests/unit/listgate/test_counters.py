"""Counters add up across transactions and labels (SQLite upsert)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from listgate import counters
from listgate.db import transaction


def test_bump_creates_then_adds(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        counters.bump(session, counters.RECEIVED)
    with transaction(db) as session:
        counters.bump(session, counters.RECEIVED, n=2)
    with transaction(db) as session:
        assert counters.values(session, counters.RECEIVED) == {"": 3}


def test_labels_are_counted_apart(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        counters.bump(session, counters.REFUSED, "unknown-list")
        counters.bump(session, counters.REFUSED, "too-big")
        counters.bump(session, counters.REFUSED, "unknown-list")
    with transaction(db) as session:
        assert counters.values(session, counters.REFUSED) == {"unknown-list": 2, "too-big": 1}
        assert counters.total(session, counters.REFUSED) == 3
        assert counters.total(session, "never-happened") == 0


def test_a_rolled_back_bump_does_not_count(db: sessionmaker[Session]) -> None:
    try:
        with transaction(db) as session:
            counters.bump(session, counters.STORED)
            raise RuntimeError("ingest failed")
    except RuntimeError:
        pass
    with transaction(db) as session:
        assert counters.total(session, counters.STORED) == 0


def test_bump_all_adds_a_batch_of_counts_to_old_and_new_counters(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        counters.bump(session, counters.REFUSED, "banned")
    with transaction(db) as session:  # what the archiver adds after a batch, in one statement
        counters.bump_all(
            session,
            {
                (counters.REFUSED, "banned"): 2,
                (counters.REFUSED, "automatic"): 1,
                (counters.STORED, "stored"): 5,
            },
        )
        counters.bump_all(session, {})
    with transaction(db) as session:
        assert counters.values(session, counters.REFUSED) == {"banned": 3, "automatic": 1}
        assert counters.values(session, counters.STORED) == {"stored": 5}
