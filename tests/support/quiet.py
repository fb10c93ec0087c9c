"""When a running listgate site has nothing left to send now: what the journeys wait for.

A site is quiet when, read from its database, its broker and the SMTP sink:
- no accepted mail waits in the spool for the archiver;
- no outbox entry is left undone (a notice's entry is claimed, done_at set, BEFORE its SMTP
  send, so "done" alone does not mean "sent": see the last point);
- no delivery is pending, claimed (sending) or being handed over (handing), and no deferred
  one is due;
- no digest is being sent;
- no task waits in the broker queue; on Redis also none is held unacknowledged by the worker
  (tasks are acknowledged late: after they ran, SMTP sends included);
- every mail the database counts as sent (deliveries, digests, claimed notices) has reached
  the sink: one still on its way makes the count short.

Deferred work is not "now" and is not waited for: a delivery deferred to a later
next_attempt_at, a digest deferred (its resend entry waits for the outbox sweeper), a notice
released after a deferral (its payload says rate_checked) waits for the sweeper too. Once the
sweeper queues them they are busy again. A task retried after a transient error is held
until its countdown: its outbox entry stays undone, so that is waited for.

The limit: a copy nothing records, sent by a task after its last write (a defect sending a
copy twice outside the delivery rows). On Redis the task is still unacknowledged, so the step
that caused it sees it. The embedded SQLite broker keeps no trace of a running task (kombu
marks a taken message invisible; acknowledging it writes nothing), so there it may arrive
after the step ended: the next step's exact check reports it as unexpected mail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from listgate import dispatch
from listgate.config import Settings
from listgate.db import make_engine, session_factory, sqlite_engine
from listgate.models import Delivery, DigestSent, OutboxEntry
from listgate.spool import Spool
from listgate.states import DeliveryState, DigestState
from listgate.status.broker import broker_queue_lengths
from tests.support.sink import SmtpSink

REDIS_UNACKED = "unacked"  # kombu's Redis transport: messages delivered and not acknowledged
IN_FLIGHT = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.HANDING)


class Quiet:
    """Reads what a running site still has to do now (busy()); a context manager (its
    connections are closed on leaving, before the test's database is dropped)."""

    def __init__(self, env: dict[str, str], sink: SmtpSink) -> None:
        self.settings = Settings.from_env(env)
        self.sink = sink
        self.engine = reader(self.settings)
        self.sessions = session_factory(self.engine)
        self.spool = Spool(self.engine)
        self.redis: Any = None
        if self.settings.broker_url.startswith(("redis://", "rediss://")):
            import redis

            self.redis = redis.Redis.from_url(self.settings.broker_url)

    def __enter__(self) -> Quiet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.spool.close()
        self.engine.dispose()
        if self.redis is not None:
            self.redis.close()

    def busy(self) -> list[str]:
        """What could still send mail now, one phrase each; [] when the site is quiet."""
        with self.sessions() as session:
            found = self._database(session)
        waiting = broker_queue_lengths(self.settings.broker_url)
        found += [f"{n} task(s) waiting in broker queue {q}" for q, n in waiting.items() if n]
        if self.redis is not None:
            held = int(self.redis.hlen(REDIS_UNACKED))
            if held:
                found.append(f"{held} task(s) taken by the worker and not finished")
        return found

    def _database(self, session: Session) -> list[str]:
        now = datetime.now(UTC)
        found = []
        spooled = self.spool.depth(session, now).pending
        if spooled:
            found.append(f"{spooled} mail(s) in the spool, not archived yet")
        undone = session.execute(
            select(OutboxEntry.id, OutboxEntry.kind, OutboxEntry.ref_id, OutboxEntry.payload)
            .where(OutboxEntry.done_at.is_(None))
            .order_by(OutboxEntry.id)
        ).all()
        deferred_digests = set(
            session.scalars(
                select(DigestSent.id).where(DigestSent.status == DigestState.DEFERRED)
            ).all()
        )
        now_work = [
            f"{kind} #{entry_id}"
            for entry_id, kind, ref_id, payload in undone
            if not _left_for_the_sweeper(kind, ref_id, payload, deferred_digests)
        ]
        if now_work:
            found.append(f"outbox entries not done: {', '.join(now_work)}")
        deliveries = dict(
            session.execute(
                select(Delivery.status, func.count())
                .where(
                    Delivery.status.in_(IN_FLIGHT)
                    | (
                        (Delivery.status == DeliveryState.DEFERRED)
                        & (Delivery.next_attempt_at <= now)
                    )
                )
                .group_by(Delivery.status)
            ).all()
        )
        if deliveries:
            found.append(f"deliveries not final: {deliveries}")
        sending = session.scalar(
            select(func.count())
            .select_from(DigestSent)
            .where(DigestSent.status == DigestState.SENDING)
        )
        if sending:
            found.append(f"{sending} digest(s) being sent")
        recorded = recorded_sends(session) - self.sink.recorded_before
        landed = len(self.sink.received)
        if landed < recorded:
            found.append(
                f"{recorded - landed} mail(s) counted as sent have not reached the sink yet"
            )
        return found


def reader(settings: Settings) -> Engine:
    """An engine to read the site's database with (on SQLite without the statistics upkeep of
    listgate.db.make_engine, whose PRAGMA optimize writes)."""
    if settings.database_url.startswith("sqlite"):
        return sqlite_engine(settings.database_url)
    return make_engine(settings)


def _left_for_the_sweeper(kind: str, ref_id: int, payload: str, deferred: set[int]) -> bool:
    """An undone entry that only the outbox sweeper takes up again, later (a deferral)."""
    if kind == dispatch.RESEND_DIGEST:
        return ref_id in deferred
    if kind == dispatch.SEND_NOTICE:
        return bool(json.loads(payload or "{}").get("rate_checked"))
    return False


def recorded_sends(session: Session) -> int:
    """Mails the database counts as sent or being sent: each should be (or become) one at the
    sink."""
    copies = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.status.in_((DeliveryState.SENT, DeliveryState.HANDING)))
    )
    digests = session.scalar(
        select(func.count()).select_from(DigestSent).where(DigestSent.status == DigestState.SENT)
    )
    # claimed (done_at set by the claim), not refused, not withheld by the automatic-reply rate
    notices = session.scalar(
        select(func.count())
        .select_from(OutboxEntry)
        .where(
            OutboxEntry.kind == dispatch.SEND_NOTICE,
            OutboxEntry.done_at.is_not(None),
            OutboxEntry.failed_at.is_(None),
            OutboxEntry.last_error == "",
        )
    )
    return int(copies or 0) + int(digests or 0) + int(notices or 0)
