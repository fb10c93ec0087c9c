"""Exactly-once delivery of one post to many recipients.

States of a Delivery row: pending -> sending (claimed, SMTP transaction under way) ->
handing (the whole message is with the relay, only the final "." and its 250 are
outstanding) -> sent; or deferred (4xx, retried with backoff), bounced (5xx), failed
(gave up after MAX_ATTEMPTS) or cancelled (unsubscribed before we got to it).

Recovery after a crash (recover_stale): a stale `sending` row never had its final "." sent,
so the relay discarded the transaction when the connection dropped: it is sent again. A
stale `handing` row is counted as delivered (so is a connection lost after the "."), so a
crash never makes two copies. Before the "." the claim is re-checked (compare-and-set on
claimed_at): a sender overtaken by recovery abandons, so a slow relay never doubles either.

The remaining window, honestly: a worker killed after the database made the `handing`
commit durable and before the kernel accepted the 3-byte "." (the driver's COMMIT call
returning, then one send()) loses that one recipient's copy. That is microseconds per
message, on a connection held open for the whole run; every other moment is safe.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from listgate.db import transaction
from listgate.models import Bounce, Delivery, MailingList, Message, OutboxEntry, Subscription
from listgate.models.archive import VISIBLE
from listgate.models.people import ACTIVE
from listgate.subscriptions import unsubscribe_token

from worker import bounces, mailer
from worker.context import WorkerContext
from worker.headers import ListInfo, build_copy, verp_address, verp_token
from worker.notify import recipients

log = logging.getLogger(__name__)

PENDING, SENDING, HANDING, SENT = "pending", "sending", "handing", "sent"
DEFERRED, BOUNCED, FAILED, CANCELLED = "deferred", "bounced", "failed", "cancelled"
BATCH = 200
INSERT_BATCH = 500
BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=6)
MAX_ATTEMPTS = 10  # about 22 hours of retries
STALE_AFTER = 300.0  # seconds a claim may be held before recovery takes it over


def now() -> datetime:
    """Timezone-aware UTC now."""
    return datetime.now(timezone.utc)


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` tries: 5 min doubling, at most 6 h."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def insert_absent(session: Session, message_pk: int, chosen: dict[str, tuple[int, int]]) -> None:
    """Create the Delivery rows that do not exist yet (a retried fan-out never duplicates)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    rows = [{"message_pk": message_pk, "address": addr, "subscription_id": sub_id, "status": PENDING,
             "attempts": 0, "created_at": now(), "last_error": ""} for addr, (sub_id, _) in sorted(chosen.items())]
    for start in range(0, len(rows), INSERT_BATCH):
        stmt = insert(Delivery).values(rows[start:start + INSERT_BATCH])
        session.execute(stmt.on_conflict_do_nothing(index_elements=["message_pk", "address"]))


def fanout(ctx: WorkerContext, outbox_id: int, message_pk: int) -> int:
    """Record who gets the post (once), mark the outbox entry done, then send; returns copies sent."""
    with transaction(ctx.db) as session:
        entry = session.get(OutboxEntry, outbox_id)
        if entry is not None and entry.done_at is None:
            msg = session.get(Message, message_pk)
            if msg is not None and msg.status == VISIBLE:
                chosen = recipients(session, msg, msg.raw.data)
                insert_absent(session, message_pk, chosen)
                log.info("fan-out of message %s: %d recipients", message_pk, len(chosen))
            entry.done_at, entry.attempts = now(), entry.attempts + 1
    return send_message(ctx, message_pk, [Delivery.status == PENDING])


def claim(ctx: WorkerContext, message_pk: int, where: list[Any], limit: int = BATCH) -> tuple[list[int], datetime]:
    """Atomically take up to `limit` rows matching `where` (compare-and-set); (ids, claim time)."""
    stamp = now()
    with transaction(ctx.db) as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.message_pk == message_pk, *where)
                              .order_by(Delivery.id).limit(limit)).all()
        if not ids:
            return [], stamp
        stmt = (update(Delivery).where(Delivery.id.in_(ids), *where)
                .values(status=SENDING, claimed_at=stamp, attempts=Delivery.attempts + 1)
                .returning(Delivery.id))
        return sorted(session.scalars(stmt).all()), stamp


def send_message(ctx: WorkerContext, message_pk: int, where: list[Any]) -> int:
    """Send the rows of one post matching `where`, batch by batch, over one connection."""
    with ctx.db() as session:
        msg = session.get(Message, message_pk)
        if msg is None:
            return 0
        mlist = session.get_one(MailingList, msg.list_id)
        info = ListInfo(mlist.name, mlist.title, ctx.settings.domain, ctx.settings.base_url)
        raw = msg.raw.data
        dmarc = ctx.dmarc.needs_rewrite(msg.from_addr, mlist.dmarc_mode)
        author = (msg.from_name, msg.from_addr)
        message_id = msg.message_id
    sent = 0
    # One database connection held for the whole run: the commit of `handing` then returns
    # straight from the driver (no pool check-in), which keeps the crash window below tiny.
    with mailer.connect(ctx.settings.outbound) as conn, ctx.writer.connect() as held:
        while True:
            ids, stamp = claim(ctx, message_pk, where)
            if not ids:
                return sent
            sent += _send_batch(ctx, conn, held, ids, stamp, lambda addr, url: build_copy(
                raw, info, message_id, url, dmarc=dmarc, author_name=author[0], author_addr=author[1]), info)


def _send_batch(ctx: WorkerContext, conn: Any, held: Connection, ids: list[int], stamp: datetime, render: Any,
                info: ListInfo) -> int:
    """Send each claimed row; after a network failure the rest of the batch is deferred untried."""
    with ctx.db() as session:
        rows = session.execute(select(Delivery.id, Delivery.address, Delivery.attempts, Subscription)
                               .outerjoin(Subscription, Subscription.id == Delivery.subscription_id)
                               .where(Delivery.id.in_(ids)).order_by(Delivery.id)).all()
    sent: list[int] = []
    network_down = ""
    for delivery_id, address, attempts, sub in rows:
        if sub is None or sub.status != ACTIVE:
            _finish(ctx, delivery_id, CANCELLED, "no longer subscribed")
            continue
        if network_down:
            _finish(ctx, delivery_id, DEFERRED, network_down, attempts)
            continue
        url = f"{ctx.settings.base_url}/unsubscribe/" + unsubscribe_token(
            ctx.settings.secret_key, sub.list_id, address, sub.thread_key if sub.kind == "thread" else 0)
        envelope = verp_address(info, verp_token(ctx.settings.secret_key, "d", delivery_id))
        result = conn.send(envelope, address, render(address, url),
                           before_commit=lambda i=delivery_id: _hand_over(held, i, stamp))
        if result.status == mailer.ABANDONED:
            continue  # recovery took this row over while we were slow: its new owner sends it
        if result.ok:
            # Marking `sent` may wait for the end of the batch: until then the row is
            # `handing`, which recovery already counts as delivered.
            sent.append(delivery_id)
        elif result.status == mailer.BOUNCED:
            _bounce(ctx, delivery_id, sub.id, address, f"{result.code} {result.detail}")
        else:
            _finish(ctx, delivery_id, DEFERRED, f"{result.code} {result.detail}".strip(), attempts)
            if result.code == 0:
                network_down = result.detail
    _mark(ctx, sent, SENT)
    return len(sent)


def _hand_over(held: Connection, delivery_id: int, stamp: datetime) -> bool:
    """sending -> handing, only while our claim still holds; False tells the mailer to abandon."""
    with held.begin():
        return held.execute(update(Delivery).where(
            Delivery.id == delivery_id, Delivery.status == SENDING, Delivery.claimed_at == stamp,
        ).values(status=HANDING)).rowcount == 1


def _mark(ctx: WorkerContext, delivery_ids: list[int], status: str) -> None:
    """One small write transaction (Core, no ORM session: this runs once per recipient)."""
    if not delivery_ids:
        return
    values: dict[str, Any] = {"status": status}
    if status == SENT:
        values.update(sent_at=now(), last_error="")
    with ctx.writer.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(delivery_ids)).values(**values))


def _finish(ctx: WorkerContext, delivery_id: int, status: str, detail: str, attempts: int = 0) -> None:
    """Record the outcome of one try; a deferral past MAX_ATTEMPTS becomes a failure."""
    values: dict[str, Any] = {"status": status, "last_error": "" if status == SENT else detail[:2000]}
    if status == SENT:
        values["sent_at"] = now()
    elif status == DEFERRED:
        if attempts >= MAX_ATTEMPTS:
            values["status"] = FAILED
        else:
            values["next_attempt_at"] = now() + backoff(attempts)
    _mark_values(ctx, delivery_id, values)
    if values["status"] == DEFERRED:
        log.info("delivery %s deferred: %s", delivery_id, detail)


def _mark_values(ctx: WorkerContext, delivery_id: int, values: dict[str, Any]) -> None:
    with transaction(ctx.db) as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def _bounce(ctx: WorkerContext, delivery_id: int, sub_id: int, address: str, detail: str) -> None:
    """A 5xx: the row is bounced (never retried) and the subscription scored."""
    with transaction(ctx.db) as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id)
                        .values(status=BOUNCED, last_error=detail[:2000]))
        session.add(Bounce(delivery_id=delivery_id, subscription_id=sub_id, address=address,
                           kind=bounces.PERMANENT, diagnostic=detail[:2000]))
        entries = bounces.score(session, ctx.settings, session.get(Subscription, sub_id), bounces.PERMANENT)
    ctx.enqueue(entries)
    log.info("delivery %s to %s bounced: %s", delivery_id, address, detail)


def recover_stale(ctx: WorkerContext, stale_after: float = STALE_AFTER) -> None:
    """Claims older than stale_after: `handing` counts as sent, `sending` goes back to pending."""
    cutoff = now() - timedelta(seconds=stale_after)
    with transaction(ctx.db) as session:
        assumed = session.execute(update(Delivery).where(Delivery.status == HANDING, Delivery.claimed_at <= cutoff)
                                  .values(status=SENT, sent_at=now(), last_error="assumed sent: worker stopped after handing over")).rowcount
        reset = session.execute(update(Delivery).where(Delivery.status == SENDING, Delivery.claimed_at <= cutoff)
                                .values(status=PENDING)).rowcount
    if assumed or reset:
        log.warning("recovered stale deliveries: %d assumed sent, %d to send again", assumed, reset)


def retry_due(ctx: WorkerContext, stale_after: float = STALE_AFTER, horizon: float = 0.0) -> int:
    """Send deferred rows that are due (within `horizon` s) and pending rows nobody is working on."""
    recover_stale(ctx, stale_after)
    started = now()
    due = started + timedelta(seconds=horizon)
    old = started - timedelta(seconds=stale_after)
    # claimed_at < started: a row deferred again during this run waits for the next one.
    deferred = [Delivery.status == DEFERRED, Delivery.next_attempt_at <= due, Delivery.claimed_at < started]
    orphaned = [Delivery.status == PENDING, Delivery.created_at <= old]
    sent = 0
    for where in (deferred, orphaned):
        with ctx.db() as session:
            pks: Iterable[int] = session.scalars(select(Delivery.message_pk).where(*where).distinct()).all()
        for pk in pks:
            sent += send_message(ctx, pk, where)
    return sent
