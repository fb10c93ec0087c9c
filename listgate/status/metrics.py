"""The numbers of `listgate status` and /metrics, read from the database in one transaction.

Everything is derived from rows (counters, deliveries, bounces, the outbox), so the numbers
are the same whichever process or replica asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from listgate import counters, gateways, notposted
from listgate.gateways import GatewayReport
from listgate.models import Bounce, Delivery, Message, OutboxEntry, RawMessage, Subscription
from listgate.spool import Depth, Spool
from listgate.states import DeliveryState, SubscriptionState
from listgate.status.failed import FailedPost, aware, failed_posts

# how long work that failed for good (a notice, a command's answer) stays trouble for `status`
RECENT_FAILURE_HOURS = 24
RECENT_FAILURES = timedelta(hours=RECENT_FAILURE_HOURS)


@dataclass(frozen=True)
class Metrics:
    """What the system did (counters) and what is waiting (gauges)."""

    received: int = 0
    stored: dict[str, int] = field(default_factory=dict)  # by status: visible, held
    refused: dict[str, int] = field(default_factory=dict)  # by reason
    deliveries: dict[str, int] = field(default_factory=dict)  # rows by status: sent, deferred, ...
    bounced: dict[str, int] = field(default_factory=dict)  # bounce reports by kind
    archived: int = 0
    outbox_pending: int = 0
    outbox_failed: int = 0  # outbox entries that failed for good (a command, a notice...)
    outbox_failed_recent: int = 0  # of those, failed in the last RECENT_FAILURES
    # the latest of those: "kind, error [reference]" and when ("" / None: none failed lately)
    outbox_last_failure: str = ""
    outbox_last_failed_at: datetime | None = None
    not_posted: int = 0  # accepted mail waiting in the not-posted queue
    awaiting_approval: int = 0  # subscription requests a moderator must decide on
    queue_lag_seconds: float = 0.0  # age of the oldest outbox entry not done
    last_received: datetime | None = None
    # posts a relay refused, last FAILED_WINDOW
    failed: list[FailedPost] = field(default_factory=list)
    last_deferral: str = ""  # why the most recently deferred copy was deferred
    next_retry: datetime | None = None  # when the next deferred copy is due
    # accepted mail waiting for the archiver, or failed to archive
    spool: Depth = field(default_factory=Depth)
    # each gateway's connections open and its limits, as it last said (listgate.gateways)
    gateways: list[GatewayReport] = field(default_factory=list)
    read_at: datetime | None = None  # when these numbers were read (a gateway is silent since)


def gather_metrics(session: Session, now: datetime | None = None) -> Metrics:
    """Read every metric from the database in one short read transaction."""
    now = now or datetime.now(UTC)
    deliveries = dict(
        session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    )
    bounced = dict(session.execute(select(Bounce.kind, func.count()).group_by(Bounce.kind)).all())
    pending = select(func.count(), func.min(OutboxEntry.created_at)).where(
        OutboxEntry.done_at.is_(None)
    )
    outbox_pending, oldest_created = session.execute(pending).one()
    oldest = aware(oldest_created)
    recent = OutboxEntry.failed_at >= now - RECENT_FAILURES
    failed, failed_recent = session.execute(
        select(func.count(), func.count().filter(recent))
        .select_from(OutboxEntry)
        .where(OutboxEntry.failed_at.is_not(None))
    ).one()
    last_failure = session.execute(
        select(OutboxEntry.kind, OutboxEntry.last_error, OutboxEntry.failed_at)
        .where(recent)
        .order_by(OutboxEntry.failed_at.desc())
        .limit(1)
    ).first()
    awaiting = (
        select(func.count())
        .select_from(Subscription)
        .where(Subscription.status == SubscriptionState.AWAITING)
    )
    last_deferral, next_retry = "", None
    if deliveries.get(DeliveryState.DEFERRED):
        deferred = Delivery.status == DeliveryState.DEFERRED
        last_deferral = (
            session.scalar(
                select(Delivery.last_error)
                .where(deferred)
                .order_by(Delivery.next_attempt_at.desc())
                .limit(1)
            )
            or ""
        )
        next_retry = aware(
            session.scalar(select(func.min(Delivery.next_attempt_at)).where(deferred))
        )
    return Metrics(
        received=counters.total(session, counters.RECEIVED),
        stored=counters.values(session, counters.STORED),
        refused=counters.values(session, counters.REFUSED),
        deliveries={str(k): int(v) for k, v in deliveries.items()},
        bounced={str(k): int(v) for k, v in bounced.items()},
        archived=session.scalar(select(func.count()).select_from(Message)) or 0,
        outbox_pending=int(outbox_pending or 0),
        outbox_failed=failed or 0,
        outbox_failed_recent=failed_recent or 0,
        outbox_last_failure=f"{last_failure[0]}, {last_failure[1]}" if last_failure else "",
        outbox_last_failed_at=aware(last_failure[2]) if last_failure else None,
        not_posted=notposted.count_waiting(session),
        awaiting_approval=session.scalar(awaiting) or 0,
        queue_lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        last_received=aware(session.scalar(select(func.max(RawMessage.received_at)))),
        failed=failed_posts(session, now=now, limit=1000),
        last_deferral=last_deferral,
        next_retry=next_retry,
        spool=_spool_depth(session, now),
        gateways=gateways.reports(session),
        read_at=now,
    )


def _spool_depth(session: Session, now: datetime) -> Depth:
    bind = session.get_bind()
    assert isinstance(bind, Engine)  # sessions made by session_factory(engine)
    spool = Spool(bind)
    try:
        return spool.depth(session, now)
    finally:
        spool.close()
