"""The spool on PostgreSQL: a table in the archive's
database; archivers side by side take each message once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from listgate import counters, lists
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction
from listgate.models import Ban, Message, NotPosted, OutboxEntry, SpooledMail
from listgate.states import SpoolState
from tests.support.gateway import through_hooks
from tests.support.services import cut_connections
from tests.unit.listgate.test_spool_claim import KB, TAKEN, archive_in_rounds, spool_posts


@pytest.fixture
def dev_gate(pg_settings: Settings) -> Iterator[tuple[GatewayHandler, sessionmaker[Session]]]:
    """A gateway handler (no server) on a fresh PostgreSQL archive with the list dev."""
    engine = make_engine(pg_settings)
    db = session_factory(engine)
    try:
        with transaction(db) as s:
            lists.create(s, "dev")
        yield GatewayHandler(pg_settings, db), db
    finally:
        engine.dispose()


def test_three_archivers_side_by_side_archive_each_post_once(pg_settings: Settings) -> None:
    engine = make_engine(pg_settings)
    db = session_factory(engine)
    try:
        with transaction(db) as s:
            mlist = lists.create(s, "dev")
            # banned after the 250 (below: before archiving)
            s.add(Ban(list_id=mlist.id, address="late@example.org"))
        handler = GatewayHandler(pg_settings, db)
        assert not handler.spool.separate  # the same database: claimed with SKIP LOCKED
        ids = [f"pg{n}@x" for n in range(120)]
        for n, msgid in enumerate(ids):
            raw = (
                f"From: ann@example.org\r\nSubject: post {n % 7}\r\nMessage-ID: <{msgid}>\r\n\r\n"
                f"body {n}\r\n"
            ).encode()
            assert through_hooks(handler, raw, "ann@example.org", ["dev@lists.test"]).endswith(
                "stored"
            )
        with transaction(
            db
        ) as s:  # a post whose sender is banned between its 250 and its archiving
            s.execute(delete(Ban))
        late = b"From: late@example.org\r\nSubject: late\r\nMessage-ID: <late@x>\r\n\r\nx\r\n"
        assert through_hooks(handler, late, "late@example.org", ["dev@lists.test"]).endswith(
            "stored"
        )
        with transaction(db) as s:
            s.add(Ban(list_id=mlist.id, address="late@example.org"))
        sent: list[OutboxEntry] = []
        lock = threading.Lock()

        def publish(entries: list[OutboxEntry]) -> None:
            with lock:
                sent.extend(entries)

        archivers = [Archiver(pg_settings, db, enqueue=publish, batch=7) for _ in range(3)]
        threads = [threading.Thread(target=a.drain) for a in archivers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with db() as s:
            stored = Counter(s.scalars(select(Message.message_id)))
            kept = list(
                s.execute(select(SpooledMail.message_id, SpooledMail.state, SpooledMail.reason))
            )
            not_posted = list(s.execute(select(NotPosted.message_id, NotPosted.reason)))
            depth = handler.spool.depth(s)
            received = counters.total(s, counters.RECEIVED)
    finally:
        engine.dispose()
    assert stored == Counter(ids), "each post archived exactly once"
    assert Counter(e.ref_id for e in sent if e.kind == "listgate.fanout").most_common(1)[0][1] == 1
    assert len([e for e in sent if e.kind == "listgate.fanout"]) == len(ids)
    assert kept == []  # nothing failed: the spool is empty
    assert not_posted == [("late@x", "late@example.org is banned from posting to this list")]
    assert (depth.pending, depth.failed) == (0, 0) and received == len(ids) + 1


def test_a_failed_row_stays_in_the_table_and_a_retry_archives_it(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from listgate import threads

    engine = make_engine(pg_settings)
    db = session_factory(engine)
    try:
        with transaction(db) as s:
            lists.create(s, "dev")
        handler, archiver = GatewayHandler(pg_settings, db), Archiver(pg_settings, db)
        raw = b"From: ann@example.org\r\nSubject: s\r\nMessage-ID: <pgfail@x>\r\n\r\nx\r\n"
        through_hooks(handler, raw, "ann@example.org", ["dev@lists.test"])
        real = threads.attach
        monkeypatch.setattr(
            threads, "attach", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug"))
        )
        archiver.drain()
        with db() as s:
            assert list(s.execute(select(SpooledMail.state, SpooledMail.reason))) == [
                (SpoolState.FAILED, "RuntimeError: a bug")
            ]
            assert handler.spool.depth(s).failed == 1
        monkeypatch.setattr(threads, "attach", real)
        with transaction(db) as s:
            assert handler.spool.retry(s) == 1
        with db() as s:
            assert list(s.scalars(select(SpooledMail.state))) == [SpoolState.PENDING]
        assert archiver.drain() == 1
        with db() as s:
            assert list(s.scalars(select(Message.message_id))) == ["pgfail@x"]
            assert list(s.scalars(select(SpooledMail.id))) == []
    finally:
        engine.dispose()


def test_a_message_whose_look_ups_fail_takes_no_other_message_of_its_batch_with_it(
    dev_gate: tuple[GatewayHandler, sessionmaker[Session]],
) -> None:
    """PostgreSQL refuses a NUL in a text parameter: a From with one fails its own decision (451),
    and the messages decided in the same writer batch are still answered and spooled."""
    from gateway.answers import Answer, Arrival

    handler, db = dev_gate

    def arrival(frm: bytes, msgid: str) -> Arrival:
        raw = b"From: " + frm + b"\r\nMessage-ID: <" + msgid.encode() + b">\r\n\r\nx\r\n"
        return Arrival(raw, "ann@example.org", ("dev@lists.test",))

    results = handler.store_batch(
        [
            arrival(b"ann@example.org", "good1@x"),
            arrival(b"a\x00b@example.org", "poison@x"),
            arrival(b"bob@example.org", "good2@x"),
        ]
    )
    good = [r for r in results if isinstance(r, Answer)]
    assert [r.message_id for r in good] == ["good1@x", "good2@x"]
    assert all(r.reply(False) == "250 2.0.0 OK: stored" for r in good)
    assert isinstance(results[1], Exception) and "NUL" in str(results[1])
    with db() as s:
        spooled = sorted(s.scalars(select(SpooledMail.message_id).where(SpooledMail.raw != b"")))
    assert spooled == ["good1@x", "good2@x"]


def test_a_batch_after_the_servers_connections_were_cut_is_answered_and_spooled(
    dev_gate: tuple[GatewayHandler, sessionmaker[Session]],
    pg_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restart under steady load: the pooled connections are reused at once (no ping), the
    look-ups find theirs cut and read again on a new one; no 451 for that batch, however many
    connections the look-ups' pool held (RCPT's look-ups run beside the writer's)."""
    from gateway.answers import Answer, Arrival
    from listgate import db as dbmod

    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE", 60.0)
    handler, db = dev_gate

    def batch(*ids: str) -> list[Answer | BaseException | None]:
        return handler.store_batch(
            [
                Arrival(
                    f"From: a@example.org\r\nMessage-ID: <{i}>\r\n\r\nx\r\n".encode(),
                    "a@example.org",
                    ("dev@lists.test",),
                )
                for i in ids
            ]
        )

    assert all(isinstance(r, Answer) for r in batch("a@x", "b@x"))
    read = handler.answer.read
    with read.connect() as one, read.connect() as two, read.connect() as three:
        for conn in (one, two, three):  # the look-ups' pool holds three, all cut below
            conn.exec_driver_sql("SELECT 1")
    assert cut_connections(pg_settings) >= 1
    results = batch("c@x", "d@x")
    assert [r.reply(False) if isinstance(r, Answer) else r for r in results] == [
        "250 2.0.0 OK: stored"
    ] * 2
    db.kw["bind"].dispose()  # the test's own pooled connections were cut too, and not used since
    with db() as s:
        spooled = sorted(s.scalars(select(SpooledMail.message_id).where(SpooledMail.raw != b"")))
    assert spooled == ["a@x", "b@x", "c@x", "d@x"]


def test_a_batch_holds_no_more_bytes_than_the_budget_and_a_larger_message_goes_alone(
    dev_gate: tuple[GatewayHandler, sessionmaker[Session]], pg_settings: Settings
) -> None:
    _, db = dev_gate
    bounded = pg_settings.with_(archiver_batch_bytes=1000 * KB)
    ids = spool_posts(GatewayHandler(bounded, db))
    assert archive_in_rounds(Archiver(bounded, db, enqueue=lambda _: 0, batch=20)) == TAKEN
    with db() as s:
        assert Counter(s.scalars(select(Message.message_id))) == Counter(ids)
        assert s.scalars(select(SpooledMail.id)).all() == []


def test_rows_one_archiver_holds_are_passed_over_by_another_which_takes_the_next(
    dev_gate: tuple[GatewayHandler, sessionmaker[Session]], pg_settings: Settings
) -> None:
    """The head of the line one claim locks (up to its count) is skipped, not waited for: its rows
    past the byte cut go in that archiver's next batch."""
    _, db = dev_gate
    bounded = pg_settings.with_(archiver_batch_bytes=1000 * KB)
    spool_posts(GatewayHandler(bounded, db), (300, 300, 300, 300, 100))
    first = Archiver(bounded, db, enqueue=lambda _: 0, batch=4)
    second = Archiver(bounded, db, enqueue=lambda _: 0, batch=20)
    with db() as holding:  # the first archiver's claim, its transaction still open
        held = [r.message_id for r in first.spool.claim(holding, 4, 1000 * KB)]
        assert held == ["big0@x", "big1@x", "big2@x"]
        assert second.archive_once() == 1  # the fifth: the four locked ones passed over
        holding.rollback()
    assert archive_in_rounds(first) == [3, 1]
    with db() as s:
        assert sorted(s.scalars(select(Message.message_id))) == [f"big{n}@x" for n in range(5)]
