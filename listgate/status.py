"""Operational state read from the database and the broker: `listgate status` and /metrics.

Everything is derived from rows (counters, deliveries, bounces, the outbox), so the numbers
are the same whichever process or replica asks.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from listgate import counters, gateways, notposted, plurals
from listgate.config import Settings
from listgate.db import make_engine, session_factory
from listgate.gateways import GatewayReport
from listgate.models import Bounce, Delivery, Message, OutboxEntry, RawMessage, Subscription
from listgate.schema import current, head
from listgate.spool import Depth, Spool
from listgate.states import BounceKind, DeliveryState, SubscriptionState
from listgate.supervisor import read_state, state_file

BROKER_QUEUES = ("celery",)
# how far back `status` and the moderation page list failed posts
FAILED_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class FailedPost:
    """A post a relay refused (the message itself, not a recipient): for moderators, operators."""

    message_pk: int
    list_id: int
    subject: str
    copies: int  # copies refused
    reason: str  # one relay's answer
    last: datetime


def failed_posts(
    session: Session,
    list_ids: Collection[int] | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> list[FailedPost]:
    """Posts with copies refused as messages in the last FAILED_WINDOW, newest first."""
    since = (now or datetime.now(UTC)) - FAILED_WINDOW
    last = func.max(Bounce.received_at)
    query = (
        select(
            Message.id,
            Message.list_id,
            Message.subject,
            func.count(Bounce.id),
            func.max(Bounce.diagnostic),
            last,
        )
        .join(Delivery, Delivery.id == Bounce.delivery_id)
        .join(Message, Message.id == Delivery.message_pk)
        .where(Bounce.kind == BounceKind.REFUSED, Bounce.received_at >= since)
        .group_by(Message.id, Message.list_id, Message.subject)
        .order_by(last.desc())
        .limit(limit)
    )
    if list_ids is not None:
        query = query.where(Message.list_id.in_(list_ids))
    return [
        FailedPost(pk, list_id, subject or "", int(n), reason or "", _aware(when) or since)
        for pk, list_id, subject, n, reason, when in session.execute(query)
    ]


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


@dataclass(frozen=True)
class Status:
    """The answer of `listgate status`."""

    database: str
    database_ok: bool
    revision: str | None = None
    head: str | None = None
    broker: str = ""
    broker_ok: bool = False
    broker_queue: dict[str, int] = field(default_factory=dict)
    metrics: Metrics | None = None
    processes: dict[str, Any] | None = None  # the children of a running `listgate up`, by name

    @property
    def deferring(self) -> int:
        """Copies waiting for the relay after it refused or could not be reached."""
        return self.metrics.deliveries.get(DeliveryState.DEFERRED, 0) if self.metrics else 0

    @property
    def processes_down(self) -> list[str]:
        """Children of `listgate up` not serving right now."""
        return [n for n, c in (self.processes or {}).items() if c.get("state") != "ready"]

    @property
    def ok(self) -> bool:
        """True when database and broker answer, the schema is current, no copy waits, all serve."""
        return (
            self.database_ok
            and self.broker_ok
            and self.revision == self.head
            and not self.deferring
            and not self.processes_down
        )


def redact(url: str) -> str:
    """A URL without its password, fit for logs and screens."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


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
    oldest = _aware(oldest_created)
    failed = select(func.count()).select_from(OutboxEntry).where(OutboxEntry.failed_at.is_not(None))
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
        next_retry = _aware(
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
        outbox_failed=session.scalar(failed) or 0,
        not_posted=notposted.count_waiting(session),
        awaiting_approval=session.scalar(awaiting) or 0,
        queue_lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        last_received=_aware(session.scalar(select(func.max(RawMessage.received_at)))),
        failed=failed_posts(session, now=now, limit=1000),
        last_deferral=last_deferral,
        next_retry=next_retry,
        spool=_spool_depth(session, now),
        gateways=gateways.reports(session),
    )


def _spool_depth(session: Session, now: datetime) -> Depth:
    bind = session.get_bind()
    assert isinstance(bind, Engine)  # sessions made by session_factory(engine)
    spool = Spool(bind)
    try:
        return spool.depth(session, now)
    finally:
        spool.close()


class _Channel(Protocol):
    def queue_declare(self, queue: str, passive: bool) -> Any: ...

    def close(self) -> None: ...


def broker_queue_lengths(
    broker_url: str, queues: tuple[str, ...] = BROKER_QUEUES, timeout: float = 3.0
) -> dict[str, int]:
    """Messages waiting in each broker queue; raises when the broker cannot be reached."""
    from kombu import Connection  # the transport library only; the core never imports Celery

    lengths: dict[str, int] = {}
    options = {"socket_timeout": timeout} if broker_url.startswith("redis") else {}
    with Connection(broker_url, connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=math.ceil(timeout))
        for name in queues:
            # A transport's own channel class (declared as the abstract StdChannel).
            channel = cast(_Channel, conn.channel())
            try:
                lengths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except conn.channel_errors:
                lengths[name] = 0  # an empty Redis queue has no key: nothing waits
            finally:
                channel.close()
    return lengths


def collect(settings: Settings) -> Status:
    """Check the database and the broker and read the metrics; never raises for a down service."""
    db_url, broker_url = redact(settings.database_url), redact(settings.broker_url)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, code_head = current(engine), head()
        metrics = None
        if revision is not None:
            with session_factory(engine)() as session:
                metrics = gather_metrics(session)
        db_state: dict[str, Any] = {
            "database_ok": True,
            "revision": revision,
            "head": code_head,
            "metrics": metrics,
        }
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        db_state = {"database_ok": False, "database": f"{db_url}: {_one_line(exc)}"}
    finally:
        engine.dispose()
    try:
        queue, broker_ok, broker = broker_queue_lengths(settings.broker_url), True, broker_url
    except Exception as exc:  # noqa: BLE001
        queue, broker_ok, broker = {}, False, f"{broker_url}: {_one_line(exc)}"
    return Status(
        **{"database": db_url, **db_state},
        broker=broker,
        broker_ok=broker_ok,
        broker_queue=queue,
        processes=(read_state(state_file(settings.data_dir)) or {}).get("children"),
    )


def _one_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0] if text_ else ''}"[:300]


def _ago(when: datetime, now: datetime) -> str:
    seconds = int((now - when).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{plurals.count(n, unit)} ago"
    return f"{plurals.count(max(seconds, 0), 'second')} ago"


def _failed_line(failed: list[FailedPost], now: datetime) -> str:
    line = (
        f"failed     {plurals.count(len(failed), 'post')} refused by the relay "
        f"in the last {FAILED_WINDOW.days} days"
    )
    if failed:
        newest = failed[0]
        line += (
            f" (latest {_ago(newest.last, now)}: post {newest.message_pk} "
            f'"{newest.subject[:60]}": {newest.reason[:120]})'
        )
    return line


def render(status: Status, now: datetime | None = None) -> list[str]:
    """Human-readable lines for `listgate status`."""
    now = now or datetime.now(UTC)
    lines = []
    if status.database_ok:
        state = (
            "up to date"
            if status.revision == status.head
            else f"behind: code expects {status.head}, run `listgate db upgrade`"
        )
        lines.append(
            f"database   ok     {status.database} (revision {status.revision or 'none'}, {state})"
        )
    else:
        lines.append(f"database   DOWN   {status.database}")
    if status.broker_ok:
        waiting = ", ".join(f"{name}: {n} waiting" for name, n in status.broker_queue.items())
        lines.append(f"broker     ok     {status.broker} ({waiting})")
    else:
        lines.append(f"broker     DOWN   {status.broker}")
    m = status.metrics
    if m is not None:
        lag = (
            f", oldest {_ago(now - timedelta(seconds=m.queue_lag_seconds), now)}"
            if m.outbox_pending
            else ""
        )
        sp = m.spool
        waiting = f", oldest {sp.oldest_seconds:.1f} s old" if sp.pending else ""
        failed = (
            f"; {plurals.count(sp.failed, 'mail')} FAILED to archive "
            "(listgate spool list; listgate spool retry)"
            if sp.failed
            else ""
        )
        lines.append(f"spool      {sp.pending} waiting for the archiver{waiting}{failed}")
        lines.append(
            f"queue      {plurals.count(m.outbox_pending, 'outbox entry')} not done{lag}, "
            f"{m.outbox_failed} failed for good"
        )
        d = m.deliveries
        unsent = d.get(DeliveryState.PENDING, 0) + d.get(DeliveryState.SENDING, 0)
        lines.append(
            f"deliveries {d.get(DeliveryState.SENT, 0)} sent, {unsent} pending, "
            f"{d.get(DeliveryState.DEFERRED, 0)} deferred, "
            f"{d.get(DeliveryState.BOUNCED, 0)} bounced, "
            f"{d.get(DeliveryState.REFUSED, 0)} refused"
        )
        lines.append(
            f"mail       {m.received} received, {sum(m.stored.values())} stored, "
            f"{sum(m.refused.values())} refused"
        )
        lines.append(
            f"moderators {plurals.count(m.not_posted, 'mail')} accepted and not posted, "
            f"{plurals.count(m.awaiting_approval, 'subscription request')} awaiting approval"
        )
        last = (
            f"{m.last_received:%Y-%m-%d %H:%M:%S} UTC ({_ago(m.last_received, now)})"
            if m.last_received
            else "never"
        )
        lines.append(f"last mail  {last}")
        lines.append(_failed_line(m.failed, now))
        lines.extend(gateways.lines(m.gateways, now))
    if status.deferring and m is not None:
        retry = f"; next try {_in(m.next_retry, now)}" if m.next_retry else ""
        # Not status.outbound: this command's environment may not be the workers' (another
        # terminal).
        lines.append(
            f"relay      DEFERRING {plurals.count(status.deferring, 'copy')} "
            f"{'waits' if status.deferring == 1 else 'wait'} for the relay, which said: "
            f"{m.last_deferral or 'nothing recorded'}{retry}"
        )
    lines.extend(_process_lines(status.processes))
    return lines


def _in(when: datetime, now: datetime) -> str:
    seconds = int((when - now).total_seconds())
    return "now" if seconds <= 0 else f"in {seconds} s"


def _process_lines(processes: dict[str, Any] | None) -> list[str]:
    """One line per child of a running `listgate up` (none when `up` is not running here)."""
    lines = []
    for name, child in (processes or {}).items():
        restarts = child.get("restarts", 0)
        history = (
            f"; restarted {plurals.count(restarts, 'time')}, last {child['last_exit']}"
            if restarts or child.get("last_exit")
            else ""
        )
        if child.get("state") == "ready":
            lines.append(f"{name:10} ok     pid {child.get('pid')}{history}")
        elif child.get("state") == "restarting":
            lines.append(
                f"{name:10} DOWN   {child.get('last_exit')}; "
                f"restarting in {child.get('restart_in')} s "
                f"({plurals.count(restarts, 'restart')} so far)"
            )
        else:
            lines.append(f"{name:10} STARTING pid {child.get('pid')}{history}")
    return lines
