"""Issue 17, item 1: an error that aborts a group-commit batch never leaves a 250 without a stored
row.

Attack first: several clients post at once so the gateway's writer commits them in batches;
one batch then fails at a chosen step (the spool INSERT, the COMMIT) with the
errors SQLite and PostgreSQL really raise (SQLITE_FULL, SQLITE_IOERR, a lost connection). Every
250 must be in the archive afterwards and every message of the failed batch must get a 4xx.
The real full disk (a small tmpfs) is in test_fault_disk_full.py.
"""

from __future__ import annotations

import logging
import smtplib
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from listgate.db import make_engine, session_factory, writer
from tests.support.config import prepare, site_env
from tests.support.gateway import archived_ids, start_gateway, through_hooks
from tests.support.reliability import post, record
from tests.support.spool_faults import hook_appends

pytestmark = [pytest.mark.integration]
CLIENTS = 8
ERRORS = {
    "full": "database or disk is full",
    "ioerr": "disk I/O error",
    "lost": "server closed the connection unexpectedly",
}


class Fault:
    """Fails the INSERT (or the COMMIT) of the next spool transaction with a batch of 2+
    messages (the appends run on the driver's cursor: tests/support/spool_faults.py)."""

    def __init__(self, step: str, error: str) -> None:
        self.step, self.error = step, error
        self.armed = False
        self.fired = 0
        self.inserted = False  # an armed batch's INSERT ran in the open transaction
        self.lock = threading.Lock()

    def install(self, spool: Any) -> None:
        hook_appends(spool, self._statement)

    def _statement(self, driver: Any, sql: str, rows: Any) -> None:
        with self.lock:
            if sql.startswith("INSERT INTO spool"):
                self.inserted = False
                if not (self.armed and rows is not None and len(rows) >= 2):
                    return
                if self.step == "insert":
                    self._fire(driver)
                self.inserted = True
            elif sql == "COMMIT" and self.step == "commit" and self.armed and self.inserted:
                self._fire(driver)

    def _fire(self, driver: Any) -> None:
        self.armed, self.inserted = False, False
        self.fired += 1
        abort_driver(driver, self.error)


def abort_driver(driver: Any, error: str) -> None:
    """abort() on the driver's connection itself."""
    driver.rollback()
    raise sqlite3.OperationalError(error)


def abort(conn: Any, error: str) -> None:
    """What SQLite does on SQLITE_FULL/IOERR (and what a dropped PostgreSQL connection amounts to):
    the whole transaction is gone, savepoints included, then the statement fails."""
    conn.connection.dbapi_connection.rollback()
    raise sqlite3.OperationalError(error)


def _send(port: int, msgid: str, codes: dict[str, int]) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail(
                "ann@example.org", ["dev@lists.test"], post(msgid, body=f"Body of {msgid}\r\n")
            )
        codes[msgid] = 250
    except smtplib.SMTPResponseException as exc:
        codes[msgid] = exc.smtp_code


@pytest.mark.parametrize("step", ["insert", "commit"])
@pytest.mark.parametrize("error", sorted(ERRORS))
def test_an_aborted_batch_gives_no_250_without_a_stored_row(
    tmp_path: Path, step: str, error: str
) -> None:
    settings, _ = prepare(site_env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="100000"), "dev")
    engine = make_engine(settings)
    fault = Fault(step, ERRORS[error])
    db = session_factory(writer(engine))
    gw = start_gateway(settings, db)
    fault.install(gw.server.handler.spool)  # the spool's own database file on SQLite
    codes: dict[str, int] = {}
    try:
        for wave in range(6):  # waves of concurrent posts, until a batch of 2+ has failed
            fault.armed = fault.fired == 0
            threads = [
                threading.Thread(
                    target=_send, args=(settings.smtp_port, f"w{wave}c{c}@example.org", codes)
                )
                for c in range(CLIENTS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        fault.armed = False
        stored = Counter(archived_ids(db))
    finally:
        gw.stop()
        engine.dispose()
    accepted = {m for m, code in codes.items() if code == 250}
    refused = {m for m, code in codes.items() if code != 250}
    lost = sorted(accepted - set(stored))
    record(
        f"batch aborted at {step} ({error})",
        len(codes),
        len(lost),
        sum(n > 1 for n in stored.values()),
        note=f"{len(refused)} x 451",
    )
    assert fault.fired == 1, "no batch of two or more messages formed: the fault never fired"
    assert lost == [], f"answered 250 but not stored: {lost}"
    assert all(n == 1 for n in stored.values())
    # the failed batch: a 4xx each, the senders retry
    assert refused and {codes[m] for m in refused} == {451}
    # nothing of the failed batch was kept either
    assert len(refused) >= 2 and set(stored) == accepted


class ArchiveFault:
    """Aborts the archiver's transaction at the nth message row it inserts."""

    def __init__(self, nth: int, error: str) -> None:
        self.nth, self.error, self.seen, self.fired = nth, error, 0, 0

    def __call__(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        if statement.startswith("INSERT INTO messages") and not self.fired:
            self.seen += 1
            if self.seen == self.nth:
                self.fired += 1
                abort(conn, self.error)


@pytest.mark.parametrize("nth", [1, 3, 5])
@pytest.mark.parametrize("error", sorted(ERRORS))
def test_an_archiver_batch_aborted_mid_way_archives_each_message_exactly_once(
    tmp_path: Path, nth: int, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import func, select

    from gateway.handler import GatewayHandler
    from listgate.archiver import Archiver
    from listgate.models import Message, OutboxEntry, Thread

    settings, _ = prepare(site_env(tmp_path), "dev")
    engine = make_engine(settings)
    db = session_factory(writer(engine))
    handler = GatewayHandler(settings, db)
    ids = [f"a{i}@example.org" for i in range(6)]
    for i, msgid in enumerate(ids):  # a thread of six replies, each to the one before
        extra = f"In-Reply-To: <{ids[i - 1]}>\r\n" if i else ""
        raw = post(msgid, subject="Re: plan" if i else "plan").replace(
            b"\r\n\r\n", b"\r\n" + extra.encode() + b"\r\n", 1
        )
        assert through_hooks(handler, raw, "ann@example.org", ["dev@lists.test"]).endswith("stored")
    fault = ArchiveFault(nth, ERRORS[error])
    event.listen(engine, "before_cursor_execute", fault)
    sent: list[Any] = []
    archiver = Archiver(settings, db, enqueue=sent.extend, batch=50)
    try:
        # the whole batch failed: nothing archived, nothing published
        with caplog.at_level(logging.WARNING, logger="listgate.archiver"):
            assert archiver.archive_once() == 0
        assert fault.fired == 1 and sent == []
        # the operator reads the cause, not what the rollback of a vanished savepoint said
        failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
        assert failed and ERRORS[error] in failed[0], failed
        assert archiver.drain() == len(ids)  # then one at a time past the failed batch
        with db() as s:
            stored = Counter(s.scalars(select(Message.message_id)))
            threads = list(s.scalars(select(Thread)))
            outbox = s.scalar(select(func.count()).select_from(OutboxEntry))
            left = archiver.spool.depth(s).pending
    finally:
        archiver.spool.close()
        handler.spool.close()
        engine.dispose()
    record(
        f"archiver batch aborted at message {nth} ({error})",
        len(ids),
        len(set(ids) - set(stored)),
        sum(n > 1 for n in stored.values()),
    )
    assert stored == Counter(ids), "each spooled message archived exactly once"
    assert [t.message_count for t in threads] == [len(ids)]  # counters agree with the rows
    assert outbox == len(ids) and len(sent) == len(ids) and left == 0
