"""The archiver stage: takes spooled mail in order and archives it in batches, exactly once.

It runs the one ingest path (ingest_batch, shared with `listgate import`), folds the gateway's
counts into the counters, and removes each spool row in the transaction that archives it.
Mail archived and not posted (automatic mail, a ban added after the 250, a thread command
naming no thread) is in the not-posted queue, put there by ingest; a message whose archiving
raised (or whose list is gone) stays in the spool as failed with the error. Outbox entries
are handed to `enqueue` after the commit (the sweeper covers a lost publish).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from listgate import counters
from listgate.addresses import parse_recipient
from listgate.batches import Item, ItemResult, first_cause, ingest_batch
from listgate.config import Settings
from listgate.db import durable, session_factory, transaction
from listgate.ingest import COMMAND, DROPPED, DUPLICATE, REFUSED, IngestResult
from listgate.mail.parser import parse
from listgate.models import OutboxEntry
from listgate.spool import Spool, counts_of
from listgate.states import PostOrigin, SpoolState

log = logging.getLogger(__name__)

Enqueue = Callable[[list[OutboxEntry]], Any]
# told after each batch whether the spool is outgrowing the archiver (gateway.__main__'s pace)
Pace = Callable[[bool], Any]
# messages one archiving transaction takes at most (also LISTGATE_ARCHIVER_BATCH_BYTES of them):
# 100 instead of 20 cut the archiver's CPU per post by about 0.4 (its statements per post on
# PostgreSQL 1.3 -> 0.3), leaving the listener more of the machine (docs/benchmarks.md)
BATCH = 100
IDLE_POLL_SECONDS = 0.05  # an idle archiver looks for new mail this often (one indexed SELECT)
SPOOLED = "spooled mail"  # what an idle archiver found empty (listgate.filewatch)
MAX_PAUSE_SECONDS = (
    5.0  # the longest wait between tries while the database fails (space freed is soon used)
)


class Archiver:
    """Archives the spool of the database `factory` writes to."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        read_factory: sessionmaker[Session] | None = None,
        spool: Spool | None = None,
        enqueue: Enqueue | None = None,
        batch: int = BATCH,
        pace: Pace | None = None,
    ) -> None:
        self.settings, self.enqueue, self.batch, self.pace = settings, enqueue, batch, pace
        self._behind = 0  # spool rows after the last full batch's last one
        self.read_factory = read_factory or factory
        self.spool = spool or Spool(factory.kw["bind"])
        # SQLite: the archive's commits are synchronous=NORMAL elsewhere; a power loss could undo
        # one that moved the spool's mark after the spool file dropped the rows up to it
        self.factory = (
            session_factory(durable(factory.kw["bind"])) if self.spool.separate else factory
        )
        self._taking: list[int] = []  # the spool ids of the batch under way
        self.pause = 0.0  # > 0 after a failure: wait this long before the next try
        self._alone_until = 0  # after an aborted batch, archive one at a time up to this spool id

    def archive_once(self) -> int:
        """Archive one batch; the number of spool rows it took (0: nothing waiting, or it
        failed)."""
        limit = 1 if self._alone_until else self.batch
        self._taking = []
        try:
            claimed, entries = (
                self._from_file(limit) if self.spool.separate else self._from_table(limit)
            )
        except Exception as exc:  # noqa: BLE001 - nothing of this batch was archived; it is tried again
            return self._failed(exc, self._taking)
        if not claimed:
            self._pace(claimed, limit)
            return 0
        self.pause, self._alone_until = (
            0.0,
            (0 if claimed[-1] >= self._alone_until else self._alone_until),
        )
        if entries and self.enqueue is not None:
            self.enqueue(entries)
        self._pace(claimed, limit)
        return len(claimed)

    def _pace(self, claimed: list[int], limit: int) -> None:
        """Tell the pace whether the spool outgrows the archiver; a failed look-up says no (the
        batch is archived and handed on already: nothing of it depends on this)."""
        if self.pace is None:
            return
        try:
            outgrown = self._outgrown(claimed, limit)
        except Exception as exc:  # noqa: BLE001 - see above
            log.debug("could not tell whether the spool outgrows the archiver: %s", exc)
            self._behind, outgrown = 0, False
        self.pace(outgrown)

    def _outgrown(self, claimed: list[int], limit: int) -> bool:
        """True when more mail came into the spool during this batch than the batch took: the
        listener is answering faster than the archive follows (a burst). A batch that took less
        than its limit took all that waited: caught up. One indexed look-up after a full batch."""
        if len(claimed) < limit:
            self._behind = 0
            return False
        behind = max(0, self.spool.newest() - claimed[-1])
        outgrown, self._behind = behind > self._behind, behind
        return outgrown

    def _from_table(self, limit: int) -> tuple[list[int], list[OutboxEntry]]:
        """PostgreSQL: claim (SKIP LOCKED), parse and archive in one transaction; other archivers
        take other rows."""
        with transaction(self.factory) as session:
            rows = self.spool.claim(session, limit, self.settings.archiver_batch_bytes)
            self._taking = [r.id for r in rows]
            return [r.id for r in rows], self._archive(
                session, rows, {r.id: self._item(r) for r in rows if r.rcpt_tos}
            )

    def _from_file(self, limit: int) -> tuple[list[int], list[OutboxEntry]]:
        """SQLite: read and parse the spool file before taking the archive's write lock, then
        archive past the mark."""
        watch = self.spool.watch
        quiet, version = watch.still_empty(SPOOLED) if watch else (False, None)
        if quiet:
            return [], []  # nothing appended or cleared since it last held nothing (20 polls/s)
        with self.read_factory() as session:
            mark = self.spool.mark(session)
        rows = self.spool.pending(limit, after=mark, budget=self.settings.archiver_batch_bytes)
        if not rows:  # idle: clear what was archived (by us, or by an archiver that died since)
            self._clear(mark, soon=False)
            if watch:  # quiet from now on, unless archived rows are left to clear
                watch.found_empty(SPOOLED, version if self.spool.cleared >= mark else None)
            return [], []
        if watch:
            watch.found_empty(SPOOLED, None)
        self._taking = [r.id for r in rows]
        items = {r.id: self._item(r) for r in rows if r.rcpt_tos}
        with transaction(self.factory) as session:
            if self.spool.mark(session) != mark:  # another archiver got there first
                return [], []
            entries = self._archive(session, rows, items)
        self._clear(rows[-1].id, soon=True)
        return [r.id for r in rows], entries

    def _clear(self, mark: int, *, soon: bool) -> None:
        """Drop archived rows from the spool file; a failure is no failure of the archiving.

        The archiving committed already: its work is handed on and the next batch follows. The
        rows stay past the mark (never archived twice) until a later clear succeeds. On a full
        disk the DELETE of many rows can need more room in the spool file's WAL than a batch's
        commit in the archive's; pausing the archiving for it would only hold mail back.
        """
        try:
            self.spool.clear_through(mark, soon=soon)
        except Exception as exc:  # noqa: BLE001 - see above
            log.warning(
                "could not clear archived mail from the spool file (%s: %s); it stays there, "
                "past the archive's mark, until a later clear",
                type(exc).__name__,
                exc,
            )

    def _item(self, row: Any) -> Item:
        """A spooled message parsed, for each recipient it was accepted for."""
        found = (parse_recipient(a, self.settings.domain) for a in row.rcpt_tos.split("\n") if a)
        return Item(
            parse(row.raw, row.received_at),
            tuple(r for r in found if r is not None),
            PostOrigin.SMTP,
            row.mail_from,
        )

    def _archive(
        self, session: Session, rows: Sequence[Any], items: dict[int, Item]
    ) -> list[OutboxEntry]:
        """Ingest, count, and take the rows out of the spool, all in the caller's transaction."""
        if not rows:
            return []
        ids = list(items)
        results = dict(
            zip(
                ids,
                ingest_batch(
                    session,
                    [items[i] for i in ids],
                    domain=self.settings.domain,
                    fallback_days=self.settings.subject_fallback_days,
                ),
                strict=True,
            )
        )
        entries, kept, tally = _outcomes(rows, results)
        self.spool.done(session, rows, kept)
        counters.bump_all(session, tally)
        return entries

    def _failed(self, exc: Exception, claimed: list[int]) -> int:
        """After a batch that could not commit: one message at a time past it, and a pause that
        grows."""
        if len(claimed) > 1:
            self._alone_until = max(claimed)
            log.warning(
                "archiving a batch of spooled mail failed (%s); retrying one message at a time",
                first_cause(exc),
            )
            return 0
        self.pause = min(max(0.5, self.pause * 2), MAX_PAUSE_SECONDS)
        log.error(
            "archiving failed (%s); the mail stays spooled, next try in %.1f s",
            first_cause(exc),
            self.pause,
        )
        return 0

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Archive until stop is set; idle, wait for wake (or poll); after a failure, pause."""
        log.debug("archiver running (batches of up to %d)", self.batch)
        while not stop.is_set():
            try:
                done = self.archive_once()
            except Exception:
                log.exception("archiver round failed")
                self.pause, done = min(max(0.5, self.pause * 2), MAX_PAUSE_SECONDS), 0
            if done and not self.pause:
                continue
            (wake or stop).wait(self.pause or IDLE_POLL_SECONDS)
            if wake is not None:
                wake.clear()

    def drain(self, timeout: float = 30.0) -> int:
        """Archive until nothing is pending (tests, tools); how many rows it took."""
        deadline, total = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            done = self.archive_once()
            total += done
            if not done and not self.pause:
                return total
            if not done:
                time.sleep(self.pause)
        return total


def _outcomes(
    rows: Sequence[Any], results: dict[int, ItemResult]
) -> tuple[list[OutboxEntry], list[dict[str, Any]], dict[tuple[str, str], int]]:
    """(outbox entries, rows to keep with their state and reason, counter increments) of an archived
    batch."""
    entries: list[OutboxEntry] = []
    kept: list[dict[str, Any]] = []
    tally: dict[tuple[str, str], int] = {}
    now = datetime.now(UTC)
    for row in rows:
        for name, label, n in counts_of(row.counts):
            tally[(name, label)] = tally.get((name, label), 0) + n
        result = results.get(row.id)
        if result is None:  # only counts: an answer that stored nothing
            continue
        if isinstance(result, Exception):
            kept.append(
                {
                    "pk": row.id,
                    "state": SpoolState.FAILED,
                    "reason": f"{type(result).__name__}: {result}"[:2000],
                    "at": now,
                }
            )
            continue
        for r in {id(r): r for r in result if r is not None}.values():
            entries.extend(r.outbox)
            key2 = _counted(r)
            if key2:
                tally[key2] = tally.get(key2, 0) + 1
        gone = [
            address
            for address, r in zip(filter(None, row.rcpt_tos.split("\n")), result, strict=False)
            if r is None
        ]
        if (
            gone
        ):  # deleted after the 250: nowhere to keep it but here (a retry once the list is back)
            kept.append(
                {
                    "pk": row.id,
                    "state": SpoolState.FAILED,
                    "reason": f"no such list any more: {', '.join(gone)}"[:2000],
                    "at": now,
                }
            )
    return entries, kept, tally


def _counted(r: IngestResult) -> tuple[str, str] | None:
    """The counter one archived result adds to (duplicates and commands add none)."""
    if r.status in (DUPLICATE, COMMAND):
        return None
    if r.status in (DROPPED, REFUSED):
        return counters.REFUSED, "automatic" if r.status == DROPPED else "banned"
    return counters.STORED, r.status
