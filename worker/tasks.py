"""The tasks, registered on an app by make_celery: thin, ids in, work done in the modules below."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from celery import Celery, Task
from celery.signals import worker_process_init
from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from listgate import dispatch
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import OutboxEntry, RawMessage

from worker import bounces, commands, delivery, digest, mailer, moderation, notices
from worker.context import WorkerContext
from worker.dmarc import TxtResolver

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, OSError)  # a locked or unreachable database, a network blip
MAX_DISPATCHES = 30  # the sweeper gives up on an outbox entry after this many tries (about a day)
SWEEP_AFTER = 60.0


def run_outbox(ctx: WorkerContext, outbox_id: int, handler: Callable[[Session, OutboxEntry], list[OutboxEntry]]) -> None:
    """Run handler on a not-yet-done outbox entry, mark it done in the same transaction, enqueue its mail."""
    with transaction(ctx.db) as session:
        entry = session.get(OutboxEntry, outbox_id)
        if entry is None or entry.done_at is not None:
            return
        queued = handler(session, entry)
        entry.done_at = datetime.now(timezone.utc)
    ctx.enqueue(queued)


def send_notice(ctx: WorkerContext, outbox_id: int) -> None:
    """Render and send one generated mail; 4xx leaves it for the sweeper, 5xx or a bad payload drops it.

    The entry is claimed (done_at set, compare-and-set) before sending, so a task re-queued by
    the sweeper while the first copy still waits in the broker never sends a second notice. A
    worker killed during the SMTP transaction loses that notice (at most once, like deliveries).
    """
    with transaction(ctx.db) as session:
        claimed = session.execute(update(OutboxEntry).where(
            OutboxEntry.id == outbox_id, OutboxEntry.done_at.is_(None)).values(done_at=datetime.now(timezone.utc)))
        entry = session.get(OutboxEntry, outbox_id) if claimed.rowcount == 1 else None
        payload = json.loads(entry.payload or "{}") if entry is not None else None
        attached = session.get(RawMessage, int(payload.get("attach_raw_id") or 0)) if payload else None
        attachment = attached.data if attached is not None else b""
    if payload is None:
        return
    try:
        to, data = notices.render(payload, ctx.settings, attachment)
    except notices.NoticeError as exc:
        log.error("outbox entry %s: %s", outbox_id, exc)
        return
    data = ctx.signer.sign(data)
    with mailer.connect(ctx.settings.outbound) as conn:
        result = conn.send("", to, data)
    if result.status == mailer.DEFERRED:
        # Released again: the sweeper re-queues it with backoff (one retry path, not two).
        log.warning("notice %s to %s deferred: %s", outbox_id, to, result.detail)
        with transaction(ctx.db) as session:
            session.execute(update(OutboxEntry).where(OutboxEntry.id == outbox_id).values(done_at=None))
    elif result.status == mailer.BOUNCED:
        log.warning("notice %s to %s refused: %s", outbox_id, to, result.detail)


def redispatch_after(older_than: float, attempts: int) -> timedelta:
    """How long after its last dispatch an unfinished entry is sent again: doubling, at most an hour."""
    return timedelta(seconds=min(older_than * 2 ** max(attempts - 1, 0), 3600.0))


def sweep_outbox(ctx: WorkerContext, older_than: float = SWEEP_AFTER) -> int:
    """Re-queue outbox entries not done and older than older_than seconds (a lost task is never lost mail)."""
    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(seconds=older_than)
    with transaction(ctx.db) as session:
        candidates = session.scalars(select(OutboxEntry).where(
            OutboxEntry.done_at.is_(None), OutboxEntry.created_at <= cutoff, OutboxEntry.attempts < MAX_DISPATCHES,
            or_(OutboxEntry.dispatched_at.is_(None), OutboxEntry.dispatched_at <= cutoff),
        ).order_by(OutboxEntry.id).limit(1000)).all()
        entries = [e for e in candidates if e.dispatched_at is None
                   or e.dispatched_at <= now - redispatch_after(older_than, e.attempts)]
        for entry in entries:
            entry.dispatched_at, entry.attempts = datetime.now(timezone.utc), entry.attempts + 1
    if entries:
        log.info("sweeper re-queued %d outbox entries", len(entries))
    ctx.enqueue(list(entries))
    return len(entries)


def _raw(session: Session, entry: OutboxEntry) -> bytes:
    raw_id = json.loads(entry.payload or "{}").get("raw_id") or entry.ref_id
    row = session.get(RawMessage, raw_id)
    return row.data if row is not None else b""


def register(app: Celery, settings: Settings, resolver: TxtResolver | None = None) -> WorkerContext:
    """Register every listgate task on app, sharing one per-process context."""
    ctx = WorkerContext(settings, sender=app, resolver=resolver)
    opts: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "ignore_result": True,
                            "shared": False}  # each app gets its own tasks, bound to its own context

    def retrying(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """Retry only transient errors (database busy or unreachable); others fail loudly."""
        def run(task: Task, *args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except TRANSIENT as exc:
                countdown = min(30 * 2 ** task.request.retries, 3600)
                log.warning("%s%r: transient error, retry in %ss: %s", task.name, args, countdown, exc)
                raise task.retry(exc=exc, countdown=countdown, max_retries=8) from None
        run.__name__ = run.__qualname__ = name.replace(".", "_")
        return run

    tasks = {
        dispatch.FANOUT: lambda outbox_id, message_pk: delivery.fanout(ctx, outbox_id, message_pk),
        delivery.SEND_CHUNK: lambda message_pk, first_id, last_id: delivery.send_chunk(
            ctx, message_pk, first_id, last_id),
        dispatch.SEND_NOTICE: lambda outbox_id: send_notice(ctx, outbox_id),
        dispatch.HANDLE_COMMAND: lambda outbox_id: run_outbox(
            ctx, outbox_id, lambda s, e: commands.handle(s, settings, e)),
        dispatch.HANDLE_BOUNCE: lambda outbox_id: run_outbox(
            ctx, outbox_id, lambda s, e: bounces.handle(s, settings, e, _raw(s, e))),
        dispatch.SWEEP_OUTBOX: lambda older_than=SWEEP_AFTER: sweep_outbox(ctx, older_than),
        dispatch.RETRY_DEFERRED: lambda stale_after=delivery.STALE_AFTER, horizon=0.0: delivery.retry_due(
            ctx, stale_after, horizon),
        dispatch.SEND_DIGESTS: lambda day=None: digest.send_digests(ctx, date.fromisoformat(day) if day else None),
        dispatch.RESEND_DIGEST: lambda outbox_id: digest.resend(ctx, outbox_id),
        dispatch.NOTIFY_MODERATORS: lambda outbox_id: run_outbox(
            ctx, outbox_id, lambda s, e: moderation.notify(s, settings, e)),
        dispatch.SEND_REMINDERS: lambda: moderation.send_reminders(ctx),
    }
    for name, func in tasks.items():
        app.task(name=name, typing=False, **opts)(retrying(name, func))
    worker_process_init.connect(lambda **_: _warm(ctx), weak=False)
    return ctx


def _warm(ctx: WorkerContext) -> None:
    """In each new pool process: connect and import ahead of the first task (a fan-out's first copy)."""
    try:
        ctx.warm()
    except Exception as exc:  # noqa: BLE001 - only an optimisation: the first task will report the problem
        log.warning("worker process warm-up failed: %s", exc)
