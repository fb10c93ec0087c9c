"""Outbox work in the worker: run an entry once, fail it for good, send a notice, sweep lost ones.

The tasks in worker/tasks.py call these; every outbox entry is done or failed exactly once.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, or_, select, update
from sqlalchemy.orm import Session

from listgate import autoreply
from listgate.config import Settings
from listgate.db import is_transient, rowcount, transaction
from listgate.models import OutboxEntry, RawMessage
from worker import handing, mailer, notices, relay_sessions
from worker.context import WorkerContext

log = logging.getLogger(__name__)

MAX_DISPATCHES = 30  # the sweeper gives up on an outbox entry after this many tries (about a day)
SWEEP_AFTER = 60.0


def run_outbox(
    ctx: WorkerContext,
    outbox_id: int,
    handler: Callable[[Session, OutboxEntry], list[OutboxEntry]],
    on_failure: Callable[[Session, OutboxEntry, str], list[OutboxEntry]] | None = None,
) -> None:
    """Run handler on a not-yet-done outbox entry, mark it done in that transaction, queue mail.

    A transient error (database busy or unreachable) propagates, so the task is retried. Any
    other error fails the same way every time: the entry ends as failed, and on_failure may
    queue an answer (a command's sender is told).
    """
    try:
        with transaction(ctx.db) as session:
            # FOR UPDATE: a run of the same entry beside this one (queued again by the sweeper,
            # or given back by Redis) waits for this commit and then finds it done
            entry = session.get(OutboxEntry, outbox_id, with_for_update=True)
            if entry is None or entry.done_at is not None:
                return
            queued = handler(session, entry)
            entry.done_at = datetime.now(UTC)
    except Exception as exc:
        if is_transient(exc):
            raise
        queued = fail(ctx, outbox_id, exc, on_failure)
    ctx.enqueue(queued)


def fail(
    ctx: WorkerContext,
    outbox_id: int,
    exc: BaseException,
    on_failure: Callable[[Session, OutboxEntry, str], list[OutboxEntry]] | None = None,
    claimed: bool = False,
) -> list[OutboxEntry]:
    """End an outbox entry as failed for good; the answer to send.

    The failure is logged with its stack trace and a reference.

    claimed: this worker holds the entry (done_at set by its claim); otherwise an entry someone
    else finished meanwhile is left as it is.
    """
    reference = secrets.token_hex(4)
    log.error("outbox entry %s failed for good [reference %s]", outbox_id, reference, exc_info=exc)
    detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:1000]
    with transaction(ctx.db) as session:
        entry = session.get(OutboxEntry, outbox_id)
        if (
            entry is None
            or entry.failed_at is not None
            or (entry.done_at is not None and not claimed)
        ):
            return []
        entry.done_at = entry.failed_at = datetime.now(UTC)
        entry.last_error = f"{detail} [reference {reference}]"
        return on_failure(session, entry, reference) if on_failure else []


def claim(session: Session, outbox_id: int) -> OutboxEntry | None:
    """Take a not-yet-done entry by compare-and-set on done_at; None if it is done or taken."""
    claimed = session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == outbox_id, OutboxEntry.done_at.is_(None))
        .values(done_at=datetime.now(UTC))
    )
    return session.get(OutboxEntry, outbox_id) if rowcount(claimed) == 1 else None


def claim_notice(session: Session, outbox_id: int, stamp: datetime) -> OutboxEntry | None:
    """Take a notice not done and not claimed by compare-and-set on claimed_at; None if it is
    done or taken (a live claim, or one recover_stale has not released yet)."""
    claimed = session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.id == outbox_id,
            OutboxEntry.done_at.is_(None),
            OutboxEntry.claimed_at.is_(None),
        )
        .values(claimed_at=stamp)
    )
    return session.get(OutboxEntry, outbox_id) if rowcount(claimed) == 1 else None


def send_notice(ctx: WorkerContext, outbox_id: int) -> None:
    """Render and send one generated mail; a 4xx waits for the sweeper, a 5xx or bad payload fails.

    The entry is claimed (claimed_at stamped, compare-and-set) before sending, so a task re-queued
    by the sweeper while the first copy still waits in the broker never sends a second notice.
    It becomes done in the transaction around its final dot, as the copies and digests do
    (worker/relay_sessions.py): a worker killed before the dot leaves a claim that recover_stale
    releases (the notice is sent again), one killed after it leaves the notice done (sent once).
    An automatic reply to mail (payload "reply") goes out only if its address had none within
    LISTGATE_AUTO_REPLY_WINDOW (RFC 3834), unless the mail proved its sender ("authenticated");
    its slot is taken with the claim, so a resend is not limited again.
    """
    stamp = datetime.now(UTC)
    with transaction(ctx.db) as session:
        entry = claim_notice(session, outbox_id, stamp)
        payload = json.loads(entry.payload or "{}") if entry is not None else None
        if entry is None or payload is None:
            return
        if _rate_limited(session, ctx.settings, payload):
            entry.done_at = stamp
            entry.last_error = "not sent: one automatic reply per sender per window (RFC 3834)"
            return
        if payload.get("reply") and not payload.get("rate_checked"):
            entry.payload = json.dumps({**payload, "rate_checked": True})
        attached = session.get(RawMessage, int(payload.get("attach_raw_id") or 0))
        attachment = attached.data if attached is not None else b""
    try:
        to, data = notices.render(payload, ctx.settings, attachment)
    except notices.NoticeError as exc:
        fail(ctx, outbox_id, exc, claimed=True)
        return
    wire = relay_sessions.wire_form(ctx.signer.sign(data))
    item = relay_sessions.Outgoing("", to, wire, eight_bit=not wire.isascii())
    with relay_sessions.connect(ctx.settings.outbound, size=1) as out:
        [result] = out.send([item], functools.partial(_handover, ctx, outbox_id, stamp))
    if result.status == mailer.DEFERRED:
        # Released again: the sweeper re-queues it with backoff (one retry path, not two).
        log.warning("notice %s to %s deferred: %s", outbox_id, to, result.detail)
        _settle(ctx, outbox_id, stamp, done_at=None, claimed_at=None)
    elif result.status == mailer.BOUNCED:
        log.warning("notice %s to %s refused: %s", outbox_id, to, result.detail)
        now = datetime.now(UTC)
        _settle(
            ctx,
            outbox_id,
            stamp,
            done_at=now,
            failed_at=now,
            last_error=f"refused by the relay: {result.detail}"[:1000],
        )


def _handover(
    ctx: WorkerContext,
    outbox_id: int,
    stamp: datetime,
    indexes: list[int],
    send_dots: relay_sessions.SendDots,
) -> set[int]:
    """The notice still claimed with stamp becomes done around its dot (a worker that dies after
    it sent it once), as the copies and digests become `handing` (handing.around_dots)."""
    table = OutboxEntry.__table__
    assert isinstance(table, Table)

    def take(conn: Connection) -> set[int]:
        held = conn.execute(
            update(table)
            .where(table.c.id == outbox_id, table.c.claimed_at == stamp, table.c.done_at.is_(None))
            .values(done_at=datetime.now(UTC))
        )
        return set(indexes) if rowcount(held) == 1 else set()

    def give_back(conn: Connection, lost: set[int]) -> None:
        conn.execute(update(table).where(table.c.id == outbox_id).values(done_at=None))

    return handing.around_dots(ctx.writer, send_dots, take, give_back)


def _settle(ctx: WorkerContext, outbox_id: int, stamp: datetime, **values: Any) -> None:
    """Record a notice's outcome while its claim is still this worker's."""
    with transaction(ctx.db) as session:
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == outbox_id, OutboxEntry.claimed_at == stamp)
            .values(**values)
        )


def recover_stale(ctx: WorkerContext, stale_after: float) -> None:
    """Notices claimed more than stale_after ago and not done, by a worker that died before their
    final dot: released and queued again (a notice whose dot went out is already done)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=stale_after)
    with transaction(ctx.db) as session:
        released = session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.done_at.is_(None), OutboxEntry.claimed_at <= cutoff)
            .values(
                claimed_at=None,
                last_error="sent again: the worker stopped before the relay took it",
            )
            .returning(OutboxEntry.id, OutboxEntry.kind, OutboxEntry.ref_id)
        ).all()
    if released:
        log.warning("released %d notices a stopped worker held", len(released))
    ctx.enqueue([OutboxEntry(id=i, kind=kind, ref_id=ref) for i, kind, ref in released])


def _rate_limited(session: Session, settings: Settings, payload: dict[str, Any]) -> bool:
    """True when this notice is an automatic reply its address may not get now (RFC 3834 rate)."""
    if not payload.get("reply") or payload.get("authenticated") or payload.get("rate_checked"):
        return False
    to = str(payload.get("to", ""))
    if autoreply.claim(session, to, settings.auto_reply_window):
        return False
    log.info(
        "automatic reply %r to %s not sent: one per %ss (RFC 3834)",
        payload.get("template"),
        to,
        settings.auto_reply_window,
    )
    return True


def redispatch_after(older_than: float, attempts: int) -> timedelta:
    """How long after its last dispatch an unfinished entry is sent again: doubling, max an hour."""
    return timedelta(seconds=min(older_than * 2 ** max(attempts - 1, 0), 3600.0))


def sweep_outbox(ctx: WorkerContext, older_than: float = SWEEP_AFTER) -> int:
    """Re-queue entries not done and older than older_than seconds (a lost task loses no mail)."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=older_than)
    with transaction(ctx.db) as session:
        candidates = session.scalars(
            select(OutboxEntry)
            .where(
                OutboxEntry.done_at.is_(None),
                OutboxEntry.claimed_at.is_(None),  # a claimed notice: recover_stale's
                OutboxEntry.created_at <= cutoff,
                OutboxEntry.attempts < MAX_DISPATCHES,
                or_(OutboxEntry.dispatched_at.is_(None), OutboxEntry.dispatched_at <= cutoff),
            )
            .order_by(OutboxEntry.id)
            .limit(1000)
        ).all()
        entries = [
            e
            for e in candidates
            if e.dispatched_at is None
            or e.dispatched_at <= now - redispatch_after(older_than, e.attempts)
        ]
        _give_up(session, now)
        for entry in entries:
            entry.dispatched_at, entry.attempts = datetime.now(UTC), entry.attempts + 1
    if entries:
        log.info("sweeper re-queued %d outbox entries", len(entries))
    ctx.enqueue(list(entries))
    return len(entries)


def _give_up(session: Session, now: datetime) -> None:
    """Entries dispatched MAX_DISPATCHES times and still not done end as failed.

    The status command and /metrics show them.
    """
    gone = rowcount(
        session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.done_at.is_(None),
                OutboxEntry.claimed_at.is_(None),
                OutboxEntry.attempts >= MAX_DISPATCHES,
                OutboxEntry.dispatched_at <= now - redispatch_after(SWEEP_AFTER, MAX_DISPATCHES),
            )
            .values(
                done_at=now, failed_at=now, last_error=f"gave up after {MAX_DISPATCHES} dispatches"
            )
        )
    )
    if gone:
        log.error("gave up on %d outbox entries after %d dispatches each", gone, MAX_DISPATCHES)


def raw_mail(session: Session, entry: OutboxEntry) -> bytes:
    """The stored bytes of the mail an entry is about (payload "raw_id", else ref_id), or b""."""
    raw_id = json.loads(entry.payload or "{}").get("raw_id") or entry.ref_id
    row = session.get(RawMessage, raw_id)
    return row.data if row is not None else b""
