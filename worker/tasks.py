"""The tasks: one named function per task name of listgate.dispatch; thin, ids in.

The work is done in the modules below. Each is declared with Celery's shared_task, so this
module builds no app: make_celery builds one and calls register, which gives the app's tasks
their context (settings, engine, DNS).
The module-level names are Celery's proxies to the current app's task; tests call the
functions they wrap (worker.outbox, worker.delivery, ...) with a WorkerContext instead.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery import Celery, Task, shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from listgate import dispatch
from listgate.config import Settings
from listgate.db import is_transient
from worker import bounces, commands, delivery, digest, moderation, outbox
from worker.context import WorkerContext
from worker.dmarc import TxtResolver

log = logging.getLogger(__name__)

MAX_RETRIES = (
    8  # retries of a task failing with transient errors (30 s doubling, at most 1 h apart)
)
_contexts: dict[Celery, WorkerContext] = {}  # one per app, for the life of the process (register)


class ListgateTask(Task):
    """A listgate task: acked late, no result kept; transient errors retried, others fail loudly."""

    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True

    @property
    def ctx(self) -> WorkerContext:
        """The context register gave this task's app."""
        return _contexts[self.app]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task; a transient error (database busy or unreachable) is retried with backoff.

        self.run directly, as the worker would without this method: Task.__call__ pushes a
        second, empty request over the worker's (no id, no retries) while the task runs.
        """
        try:
            return self.run(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            countdown = min(30 * 2**self.request.retries, 3600)
            log.warning("%s%r: transient error, retry in %ss: %s", self.name, args, countdown, exc)
            raise self.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES) from None


OPTIONS: dict[str, Any] = {"base": ListgateTask, "bind": True}


@shared_task(name=dispatch.FANOUT, **OPTIONS)
def fanout(task: ListgateTask, outbox_id: int, message_pk: int) -> int:
    """Record a post's deliveries, then send them (worker/delivery.py)."""
    return delivery.fanout(task.ctx, outbox_id, message_pk)


@shared_task(name=delivery.SEND_CHUNK, **OPTIONS)
def send_chunk(task: ListgateTask, message_pk: int, first_id: int, last_id: int) -> int:
    """Send the pending deliveries of a post whose ids lie in [first_id, last_id]."""
    return delivery.send_chunk(task.ctx, message_pk, first_id, last_id)


@shared_task(name=dispatch.SEND_NOTICE, **OPTIONS)
def send_notice(task: ListgateTask, outbox_id: int) -> None:
    """Render and send one generated mail (worker/notices.py)."""
    outbox.send_notice(task.ctx, outbox_id)


@shared_task(name=dispatch.HANDLE_COMMAND, **OPTIONS)
def handle_command(task: ListgateTask, outbox_id: int) -> None:
    """Carry out a mailed command; if it fails for good, its sender is told."""
    settings = task.ctx.settings
    outbox.run_outbox(
        task.ctx, outbox_id, lambda s, e: commands.handle(s, settings, e), commands.answer_failure
    )


@shared_task(name=dispatch.HANDLE_BOUNCE, **OPTIONS)
def handle_bounce(task: ListgateTask, outbox_id: int) -> None:
    """Score a bounce against the subscription its VERP token names."""
    settings = task.ctx.settings
    outbox.run_outbox(
        task.ctx, outbox_id, lambda s, e: bounces.handle(s, settings, e, outbox.raw_mail(s, e))
    )


@shared_task(name=dispatch.SWEEP_OUTBOX, **OPTIONS)
def sweep_outbox(task: ListgateTask, older_than: float = outbox.SWEEP_AFTER) -> int:
    """Re-queue outbox entries left unfinished (beat)."""
    return outbox.sweep_outbox(task.ctx, older_than)


@shared_task(name=dispatch.RETRY_DEFERRED, **OPTIONS)
def retry_deferred(
    task: ListgateTask, stale_after: float = delivery.STALE_AFTER, horizon: float = 0.0
) -> int:
    """Send deferred deliveries that are due, and recover the copies, digests and notices a dead
    worker left (beat)."""
    digest.recover_stale(task.ctx, stale_after)
    outbox.recover_stale(task.ctx, stale_after)
    return delivery.retry_due(task.ctx, stale_after, horizon)


@shared_task(name=dispatch.SEND_DIGESTS, **OPTIONS)
def send_digests(task: ListgateTask, day: str | None = None) -> int:
    """Send the digests of day (an ISO date), or of the last few days and week (beat)."""
    return digest.send_digests(task.ctx, date.fromisoformat(day) if day else None)


@shared_task(name=dispatch.RESEND_DIGEST, **OPTIONS)
def resend_digest(task: ListgateTask, outbox_id: int) -> int:
    """Send again a digest a relay deferred."""
    return digest.resend(task.ctx, outbox_id)


@shared_task(name=dispatch.NOTIFY_MODERATORS, **OPTIONS)
def notify_moderators(task: ListgateTask, outbox_id: int) -> None:
    """Tell a list's moderators of a held post or a report."""
    settings = task.ctx.settings
    outbox.run_outbox(task.ctx, outbox_id, lambda s, e: moderation.notify(s, settings, e))


@shared_task(name=dispatch.SEND_REMINDERS, **OPTIONS)
def send_reminders(task: ListgateTask) -> int:
    """Remind each list's moderators of the posts still held (beat)."""
    return moderation.send_reminders(task.ctx)


def register(app: Celery, settings: Settings, resolver: TxtResolver | None = None) -> WorkerContext:
    """Give app's listgate tasks one per-process context, warmed in each new pool process and
    closed as it ends."""
    ctx = _contexts[app] = WorkerContext(settings, sender=app, resolver=resolver)
    worker_process_init.connect(lambda **_: _warm(ctx), weak=False)
    # a pool process that ends (--max-tasks-per-child, a pool shrinking) closes its connections,
    # each running SQLite's PRAGMA optimize as it closes (listgate.statistics)
    worker_process_shutdown.connect(lambda **_: ctx.dispose(), weak=False)
    return ctx


def _warm(ctx: WorkerContext) -> None:
    """In each new pool process: connect and import early (speeds a fan-out's first copy)."""
    try:
        ctx.warm()
    except Exception as exc:  # noqa: BLE001 - only an optimisation: the first task will report the problem
        log.warning("worker process warm-up failed: %s", exc)
