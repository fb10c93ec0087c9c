"""The fan-out reads the post's headers outside its write transaction: other writers are never held
up by it.

A header folded over a million lines took minutes to read (a quadratic join) while the fan-out
held SQLite's write lock, so every post through the gateway got 451 meanwhile.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import transaction
from listgate.dispatch import FANOUT
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Delivery
from listgate.states import DeliveryState
from tests.support.factories import MakeList
from worker import delivery
from worker.context import WorkerContext
from worker.delivery import SEND_CHUNK, fanout


def _can_write(path: str) -> bool:
    """Whether another connection could take the write lock right now (without waiting)."""
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def test_fanout_reads_the_headers_while_others_can_write(
    settings: Settings,
    db: sessionmaker[Session],
    make_list: MakeList,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_list("dev")
    raw = (
        b"From: ann@example.org\r\nTo: dev@lists.test\r\nCc: carl@example.org\r\nSubject: hello\r\n"
        b"Message-ID: <p@example.org>\r\n\r\nHello.\r\n"
    )
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        for address in ("bob@example.org", "carl@example.org"):
            lists.subscribe(session, mlist, address)
        result = ingest(session, parse(raw), mlist, domain="lists.test")
        entry = next(e for e in result.outbox if e.kind == FANOUT)
    path = settings.database_url.split("///", 1)[1]
    seen: list[bool] = []
    real = delivery.addresses_in

    def watched(data: bytes, *names: str) -> set[str]:
        seen.append(_can_write(path))
        return real(data, *names)

    monkeypatch.setattr(delivery, "addresses_in", watched)
    ctx = WorkerContext(settings)
    assert result.message_pk is not None
    assert fanout(ctx, entry.id, result.message_pk) == 1  # bob; carl is already in Cc
    assert seen and all(seen), "the fan-out read the post's headers while holding the write lock"


def test_a_cc_line_in_the_body_of_a_malformed_post_costs_nobody_their_copy(
    settings: Settings,
    db: sessionmaker[Session],
    make_list: MakeList,
) -> None:
    """A line with no colon ends the header block (as the archive reads it): a "Cc:" after it is
    body.

    The worker used to read on to the first blank line, took bob for a Cc'd recipient who has his
    copy already, and sent him none.
    """
    make_list("dev")
    raw = (
        b"From: ann@example.org\r\nTo: dev@lists.test\r\nSubject: hello\r\n"
        b"Message-ID: <m@example.org>\r\n"
        b"this line has no colon\r\nCc: bob@example.org\r\n\r\nHello.\r\n"
    )
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        lists.subscribe(session, mlist, "bob@example.org")
        parsed = parse(raw)
        assert parsed.cc_addrs == ()  # the archive shows no Cc
        result = ingest(session, parsed, mlist, domain="lists.test")
        entry = next(e for e in result.outbox if e.kind == FANOUT)
    assert result.message_pk is not None
    assert fanout(WorkerContext(settings), entry.id, result.message_pk) == 1
    with db() as session:
        assert session.query(Delivery.address).filter_by(message_pk=result.message_pk).all() == [
            ("bob@example.org",)
        ]


class _Broker:
    """A task sender that takes tasks (up) or raises as a broker that is down does."""

    def __init__(self, up: bool) -> None:
        self.up, self.sent = up, list[tuple[str, list[int]]]()

    def send_task(self, name: str, args: list[int]) -> None:
        if not self.up:
            raise ConnectionError("broker down")
        self.sent.append((name, args))


@pytest.mark.parametrize("up", [True, False], ids=["broker-up", "broker-down"])
def test_a_fanout_of_many_chunks_queues_the_rest_or_sends_them_itself(
    settings: Settings,
    db: sessionmaker[Session],
    make_list: MakeList,
    monkeypatch: pytest.MonkeyPatch,
    up: bool,
) -> None:
    """The first chunk is sent by the fan-out, the others are queued for other workers; with
    the broker down the fan-out sends them all itself: nobody loses a copy."""
    monkeypatch.setattr(delivery, "CHUNK", 1)
    make_list("dev")
    raw = b"From: ann@example.org\r\nSubject: hi\r\nMessage-ID: <c@example.org>\r\n\r\nHi.\r\n"
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        for address in ("bob@example.org", "carl@example.org", "dora@example.org"):
            lists.subscribe(session, mlist, address)
        result = ingest(session, parse(raw), mlist, domain="lists.test")
        entry = next(e for e in result.outbox if e.kind == FANOUT)
    ctx = WorkerContext(settings)
    ctx.sender = broker = _Broker(up)
    assert result.message_pk is not None
    assert fanout(ctx, entry.id, result.message_pk) == (1 if up else 3)
    assert [name for name, _ in broker.sent] == ([SEND_CHUNK] * 2 if up else [])
    with db() as session:
        pending = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryState.PENDING)
        ).all()
    assert sorted(pending) == sorted(args[1] for _, args in broker.sent)
