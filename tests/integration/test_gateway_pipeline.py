"""PostgreSQL: a batch's spool append goes in the round trip of the next batch's look-ups
(gateway.answers.Answerer.begin, listgate.driver.Ahead). Whatever fails in that shared round
trip, each message is answered once and truthfully: a 250 only for what is in the spool, exactly
once, and the next batch decided and spooled as if it had gone alone.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.answers import Answer, Arrival, Begun, Result
from gateway.handler import GatewayHandler
from listgate.config import Settings
from listgate.models import SpooledMail
from tests.integration.test_spool_postgres import dev_gate as dev_gate  # the fixture
from tests.support.services import cut_connections

pytestmark = pytest.mark.integration
STORED = "250 2.0.0 OK: stored"


@pytest.fixture
def gate(
    dev_gate: tuple[GatewayHandler, sessionmaker[Session]],
) -> tuple[GatewayHandler, sessionmaker[Session]]:
    """test_spool_postgres's handler on a fresh PostgreSQL archive with the list dev, whose
    append and look-ups share a connection."""
    assert dev_gate[0].answer.shared
    return dev_gate


def _arrival(msgid: str, frm: bytes = b"ann@example.org") -> Arrival:
    raw = b"From: " + frm + b"\r\nMessage-ID: <" + msgid.encode() + b">\r\n\r\nx\r\n"
    return Arrival(raw, "ann@example.org", ("dev@lists.test",))


def _replies(results: list[Result]) -> list[str]:
    return [
        r.reply(False) if isinstance(r, Answer) else type(r).__name__ + ": " + str(r)[:60]
        for r in results
    ]


def _spooled(db: sessionmaker[Session]) -> list[str]:
    """The Message-IDs of the spool's posts, each as often as it is there."""
    with db() as s:
        return sorted(s.scalars(select(SpooledMail.message_id).where(SpooledMail.raw != b"")))


def _begin(handler: GatewayHandler, ids: list[str]) -> Begun:
    """A batch decided, its append waiting for the next batch's round trip."""
    done, begun = handler.answer.begin([_arrival(i) for i in ids])
    assert done == []
    return begun


def test_a_look_up_that_fails_in_the_shared_round_trip_takes_no_append_with_it(
    gate: tuple[GatewayHandler, sessionmaker[Session]],
) -> None:
    """The batch behind is appended with a batch whose look-ups PostgreSQL refuses (a NUL in a
    From): the batch behind gets its 250s and is spooled once; the bad message its 451 alone."""
    handler, db = gate
    behind = _begin(handler, ["k1@x", "k2@x"])
    done, begun = handler.answer.begin(
        [_arrival("n1@x"), _arrival("poison@x", b"a\x00b@example.org"), _arrival("n2@x")], behind
    )
    assert _replies(done) == [STORED, STORED]
    last = handler.answer.finish(begun)
    assert _replies([last[0], last[2]]) == [STORED, STORED]
    assert isinstance(last[1], Exception) and "NUL" in str(last[1])
    assert _spooled(db) == ["k1@x", "k2@x", "n1@x", "n2@x"]


def test_an_append_the_server_refuses_in_the_shared_round_trip_fails_only_its_batch(
    gate: tuple[GatewayHandler, sessionmaker[Session]],
) -> None:
    """The server refuses the batch behind's INSERT (a rule of the table, as a full disk or a
    read-only database would): that batch gets 451s and nothing of it is spooled; the next batch,
    whose look-up shared the round trip, is decided and spooled."""
    handler, db = gate
    with db.kw["bind"].begin() as conn:
        conn.execute(
            text("ALTER TABLE spool ADD CONSTRAINT no_refused CHECK (message_id <> 'refused@x')")
        )
    behind = _begin(handler, ["refused@x", "k2@x"])
    done, begun = handler.answer.begin([_arrival("n1@x"), _arrival("n2@x")], behind)
    assert all(isinstance(r, Exception) and "no_refused" in str(r) for r in done), done
    assert len(done) == 2
    assert _replies(handler.answer.finish(begun)) == [STORED, STORED]
    assert _spooled(db) == ["n1@x", "n2@x"]


def test_a_restart_between_batches_costs_the_batch_behind_no_451(
    gate: tuple[GatewayHandler, sessionmaker[Session]],
    pg_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server's connections are cut while a batch waits to be appended (steady load: no ping
    before reuse): the shared round trip finds its connection cut by the server before it ran, so
    the batch behind is appended again on a new connection (250, spooled once) and the next batch
    read again there."""
    from listgate import db as dbmod

    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE", 60.0)
    handler, db = gate
    _replies(handler.answer([_arrival("warm@x")]))
    behind = _begin(handler, ["k1@x", "k2@x"])
    assert cut_connections(pg_settings) >= 1
    done, begun = handler.answer.begin([_arrival("n1@x"), _arrival("n2@x")], behind)
    assert _replies(done) == [STORED, STORED]
    assert _replies(handler.answer.finish(begun)) == [STORED, STORED]
    db.kw["bind"].dispose()  # the test's own pooled connections were cut too
    assert _spooled(db) == ["k1@x", "k2@x", "n1@x", "n2@x", "warm@x"]


def test_a_batch_behind_appended_in_one_round_trip_with_the_next_look_up(
    gate: tuple[GatewayHandler, sessionmaker[Session]],
) -> None:
    """The shared round trip: one Sync for the look-up and the append (libpq's trace of the
    connection), the append committed when the answers come (a new connection reads it)."""
    handler, db = gate
    behind = _begin(handler, ["k1@x"])
    conn = behind.held.connection()
    driver = conn.connection.driver_connection
    assert driver is not None
    read, write = os.pipe()
    driver.pgconn.trace(write)
    try:
        done, begun = handler.answer.begin([_arrival("n1@x")], behind)
    finally:
        driver.pgconn.untrace()
        os.close(write)
    with open(read, "rb") as f:
        trace = f.read().decode()
    assert _replies(done) == [STORED]
    assert trace.count("\tSync") == 1 and trace.count("ReadyForQuery") == 1, trace
    assert _spooled(db) == ["k1@x"]
    handler.answer.finish(begun)
    assert _spooled(db) == ["k1@x", "n1@x"]
