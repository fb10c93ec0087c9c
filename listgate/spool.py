"""The spool: mail accepted at SMTP DATA, durable before the 250, and the archiver stage that empties it.

The gateway appends the exact bytes and the envelope (group commit, synchronous=FULL on SQLite)
and answers; the archiver takes spooled mail in order and runs the one ingest path on it in
batches. A spool row leaves in the transaction that archives it (deleted), so each message is
archived exactly once whatever dies when; a row that could not be posted stays, saying why.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from sqlalchemy import Engine, bindparam, delete, event, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate import counters
from listgate.addresses import parse_recipient
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import (COMMAND, DROPPED, DUPLICATE, REFUSED, BatchAborted, IngestResult, Item, ItemResult,
                             ingest_batch)
from listgate.models import OutboxEntry, SpooledMail
from listgate.models.spool import FAILED, NOT_POSTED, PENDING
from listgate.parsing import parse

log = logging.getLogger(__name__)

SPOOL = SpooledMail.__table__
Enqueue = Callable[[list[OutboxEntry]], Any]
IDLE_POLL_SECONDS = 0.05  # an idle archiver looks for new mail this often (one indexed SELECT)
MAX_PAUSE_SECONDS = 30.0  # the longest wait between tries while the database fails


@dataclass(frozen=True)
class Spooled:
    """What the gateway appends for one accepted message."""

    raw: bytes
    mail_from: str | None
    rcpt_tos: tuple[str, ...]
    message_id: str


@dataclass(frozen=True)
class Depth:
    """What waits in the spool, for `listgate status` and /metrics."""

    pending: int = 0
    oldest_seconds: float = 0.0  # age of the oldest message not archived yet
    not_posted: int = 0
    failed: int = 0


def durable(engine: Engine) -> Engine:
    """The engine's SQLite connections sync the WAL at each commit (synchronous=FULL): a 250 survives power loss."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _synchronous_full)
    return engine  # PostgreSQL: synchronous_commit is on by default, so COMMIT already waits for the WAL flush


def _synchronous_full(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=FULL")


def append(session: Session, mails: Sequence[Spooled]) -> None:
    """Add accepted messages to the spool in the caller's transaction (one statement)."""
    if not mails:
        return
    now = datetime.now(timezone.utc)
    session.connection().execute(insert(SPOOL), [
        {"received_at": now, "mail_from": m.mail_from, "rcpt_tos": "\n".join(m.rcpt_tos),
         "message_id": m.message_id[:1000], "raw": m.raw, "state": PENDING, "reason": ""} for m in mails])


def depth(session: Session, now: datetime | None = None) -> Depth:
    """Pending messages and the age of the oldest, and the rows kept as not posted or failed."""
    now = now or datetime.now(timezone.utc)
    by_state = dict(session.execute(select(SpooledMail.state, func.count()).group_by(SpooledMail.state)).all())
    oldest = session.scalar(select(func.min(SpooledMail.received_at)).where(SpooledMail.state == PENDING))
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=timezone.utc)
    return Depth(pending=int(by_state.get(PENDING, 0)), oldest_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
                 not_posted=int(by_state.get(NOT_POSTED, 0)), failed=int(by_state.get(FAILED, 0)))


def _pending(session: Session, limit: int, lock: bool) -> list[Any]:
    """The oldest pending rows; with lock, claimed for this transaction (others skip them: PostgreSQL)."""
    stmt = (select(SPOOL.c.id, SPOOL.c.received_at, SPOOL.c.mail_from, SPOOL.c.rcpt_tos, SPOOL.c.raw)
            .where(SPOOL.c.state == PENDING).order_by(SPOOL.c.id).limit(limit))
    if lock:
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.connection().execute(stmt))


class Archiver:
    """Takes spooled mail in order and archives it in batches, exactly once."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], *, read_factory: sessionmaker[Session] | None = None,
                 enqueue: Enqueue | None = None, batch: int = 50) -> None:
        self.settings, self.factory, self.enqueue, self.batch = settings, factory, enqueue, batch
        self.read_factory = read_factory or factory
        self.pause = 0.0  # > 0 after a failure: wait this long before the next try
        self._alone_until = 0  # after an aborted batch, archive one at a time up to this spool id

    def archive_once(self) -> int:
        """Archive one batch; the number of spool rows it took (0: nothing waiting, or it failed)."""
        limit = 1 if self._alone_until else self.batch
        lock_first = self.factory.kw["bind"].dialect.name == "postgresql"
        ready = {} if lock_first else self._parsed(limit)
        if not lock_first and not ready:
            return 0
        claimed: list[int] = []
        try:
            with transaction(self.factory) as session:
                rows = _pending(session, limit, lock=True) if lock_first else self._still_pending(session, ready)
                claimed = [row.id for row in rows]
                if not rows:
                    return 0
                items = [ready.get(row.id) or _item(row, self.settings.domain) for row in rows]
                results = ingest_batch(session, items, domain=self.settings.domain,
                                       fallback_days=self.settings.subject_fallback_days)
                entries = self._finish(session, rows, results)
        except Exception as exc:  # noqa: BLE001 - nothing of this batch was archived; it is tried again
            return self._failed(exc, claimed)
        self.pause, self._alone_until = 0.0, (0 if claimed[-1] >= self._alone_until else self._alone_until)
        if entries and self.enqueue is not None:
            self.enqueue(entries)
        return len(claimed)

    def _parsed(self, limit: int) -> dict[int, Item]:
        """SQLite: read and parse before taking the write lock (the gateway's spool writes wait for it)."""
        with self.read_factory() as session:
            rows = _pending(session, limit, lock=False)
        return {row.id: _item(row, self.settings.domain) for row in rows}

    def _still_pending(self, session: Session, ready: dict[int, Item]) -> list[Any]:
        ids = set(session.scalars(select(SPOOL.c.id).where(SPOOL.c.id.in_(list(ready)), SPOOL.c.state == PENDING)))
        return [_Claimed(i) for i in sorted(ids)]

    def _failed(self, exc: Exception, claimed: list[int]) -> int:
        """After a batch that could not commit: one message at a time past it, and a pause that grows."""
        if len(claimed) > 1:
            self._alone_until = max(claimed)
            log.warning("archiving %d spooled messages failed (%s: %s); retrying them one at a time",
                        len(claimed), type(exc).__name__, exc)
            return 0
        self.pause = min(max(0.5, self.pause * 2), MAX_PAUSE_SECONDS)
        log.error("archiving failed (%s: %s); the mail stays spooled, next try in %.1f s", type(exc).__name__, exc, self.pause)
        return 0

    def _finish(self, session: Session, rows: Sequence[Any], results: Sequence[ItemResult]) -> list[OutboxEntry]:
        """Remove archived rows, keep the others with their reason, count, collect the outbox (same transaction)."""
        archived: list[int] = []
        kept: list[dict[str, Any]] = []
        entries: list[OutboxEntry] = []
        tally: dict[tuple[str, str], int] = {}
        now = datetime.now(timezone.utc)
        for row, result in zip(rows, results):
            if isinstance(result, Exception):
                kept.append({"pk": row.id, "state": FAILED, "reason": f"{type(result).__name__}: {result}"[:2000], "at": now})
                continue
            unique = list({id(r): r for r in result if r is not None}.values())
            for r in unique:
                entries.extend(r.outbox)
                key = _counted(r)
                if key:
                    tally[key] = tally.get(key, 0) + 1
            reasons = not_posted_reasons(result)
            if reasons:
                kept.append({"pk": row.id, "state": NOT_POSTED, "reason": "; ".join(reasons)[:2000], "at": now})
            else:
                archived.append(row.id)
        if archived:
            session.connection().execute(delete(SPOOL).where(SPOOL.c.id.in_(archived)))
        if kept:
            session.connection().execute(update(SPOOL).where(SPOOL.c.id == bindparam("pk")).values(
                state=bindparam("state"), reason=bindparam("reason"), done_at=bindparam("at")), kept)
        for (name, label), n in sorted(tally.items()):
            counters.bump(session, name, label, n)
        return entries

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Archive until stop is set; idle, wait for wake (or poll); after a failure, pause."""
        log.info("archiver running (batches of up to %d)", self.batch)
        while not stop.is_set():
            try:
                done = self.archive_once()
            except Exception:  # noqa: BLE001 - the loop must live on; the mail stays spooled
                log.exception("archiver round failed")
                self.pause, done = min(max(0.5, self.pause * 2), MAX_PAUSE_SECONDS), 0
            if done and not self.pause:
                continue
            (wake or stop).wait(self.pause or IDLE_POLL_SECONDS)
            if wake is not None:
                wake.clear()

    def drain(self, timeout: float = 30.0) -> int:
        """Archive until nothing is pending (tests, `listgate archiver --once`); how many rows it took."""
        deadline, total = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            done = self.archive_once()
            total += done
            if not done and not self.pause:
                return total
            if not done:
                time.sleep(self.pause)
        return total


@dataclass(frozen=True)
class _Claimed:
    id: int


def _item(row: Any, domain: str) -> Item:
    """The spooled message parsed, for each recipient it was accepted for."""
    recipients = tuple(r for r in (parse_recipient(a, domain) for a in row.rcpt_tos.split("\n") if a) if r is not None)
    return Item(parse(row.raw, row.received_at), recipients, "smtp", row.mail_from)


def _counted(r: IngestResult) -> tuple[str, str] | None:
    """The counter one archived result adds to (duplicates and commands add none)."""
    if r.status in (DUPLICATE, COMMAND):
        return None
    if r.status in (DROPPED, REFUSED):
        return counters.REFUSED, "automatic" if r.status == DROPPED else "banned"
    return counters.STORED, r.status


def not_posted_reasons(result: list[IngestResult | None]) -> list[str]:
    """Why a message archived after its 250 was not posted on some list ([] when it was, everywhere)."""
    reasons = []
    for r in result:
        if r is None:
            reasons.append("the list no longer exists")
        elif r.status in (DROPPED, REFUSED):
            reasons.append(f"{r.list_name}: {r.reason}")
    return list(dict.fromkeys(reasons))
