"""Exactly-once delivery of one post to many recipients, sent in parallel chunks.

States of a Delivery row: pending -> sending (claimed in batches, compare-and-set) -> handing
(the final "." went out; committed once per wave, before the relay's replies are read) ->
sent; or deferred (4xx, retried with backoff), bounced (a 5xx that is the recipient's: scored),
refused (a 5xx refusing the message itself: a failed post, scored against nobody; see
worker/bounces.py), failed (gave up after MAX_ATTEMPTS) or cancelled (unsubscribed, or the post
hidden or removed, before we got to it).

Recovery after a crash (recover_stale): a stale `handing` row had its "." sent, so it is
counted as delivered; a stale `sending` row is sent again. Before the dots the claim is
re-checked inside the wave's write transaction (the UPDATE to `handing` takes the row locks):
a sender overtaken by recovery drops those sessions before their ".", and the relay discards
them. The dots are sent inside that transaction and the COMMIT follows at once. A copy is
never lost by a crash; the one window that can make a second copy (same Message-ID, so
clients can tell) is a worker killed inside that COMMIT call. docs/worker.md explains the choice.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Connection, Table, bindparam, select, update
from sqlalchemy.orm import Session

from listgate import store
from listgate.db import transaction
from listgate.models import Delivery, Message, OutboxEntry, RawMessage, Subscription
from listgate.states import (
    BounceKind,
    DeliveryState,
    PostState,
    SubscriptionKind,
    SubscriptionState,
)
from listgate.status import redact
from listgate.subscriptions import unsubscribe_token
from listgate.tokens import VERP_DELIVERY, verp_token
from worker import bounces, handing, mailer, relay_sessions
from worker.context import WorkerContext
from worker.copies import Post, load_post
from worker.headers import addresses_in, verp_address
from worker.notify import recipients

log = logging.getLogger(__name__)

SEND_CHUNK = "listgate.send_chunk"  # (message_pk, first_id, last_id): queued by fanout itself
CHUNK = 512  # deliveries per chunk task: every worker process takes some
BATCH = 256
INSERT_BATCH = 500
BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=6)
MAX_ATTEMPTS = 10  # about 22 hours of retries
STALE_AFTER = 300.0  # seconds a claim may be held before recovery takes it over


def now() -> datetime:
    """Timezone-aware UTC now."""
    return datetime.now(UTC)


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` tries: 5 min doubling, at most 6 h."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def insert_absent(session: Session, message_pk: int, chosen: dict[str, tuple[int, int]]) -> None:
    """Create the Delivery rows that do not exist yet (a retried fan-out never duplicates)."""
    rows = [
        {
            "message_pk": message_pk,
            "address": addr,
            "subscription_id": sub_id,
            "status": DeliveryState.PENDING,
            "attempts": 0,
            "created_at": now(),
            "last_error": "",
        }
        for addr, (sub_id, _) in sorted(chosen.items())
    ]
    # One statement executed many times (Core, not ORM): compiled once, not once per batch.
    stmt = (
        store.of(session)
        .insert(Delivery)
        .on_conflict_do_nothing(index_elements=["message_pk", "address"])
    )
    conn = session.connection()
    for start in range(0, len(rows), INSERT_BATCH):
        conn.execute(stmt, rows[start : start + INSERT_BATCH])


def fanout(ctx: WorkerContext, outbox_id: int, message_pk: int) -> int:
    """Record who gets the post (once), mark the outbox entry done, then send in chunks.

    Returns the number of copies sent here.
    """
    named = _named(ctx, message_pk)
    with transaction(ctx.db) as session:
        entry = session.get(OutboxEntry, outbox_id)
        if entry is not None and entry.done_at is None:
            msg = session.get(Message, message_pk)
            if msg is not None and msg.status == PostState.VISIBLE:
                chosen = recipients(session, msg, named)
                insert_absent(session, message_pk, chosen)
                log.info("fan-out of message %s: %d recipients", message_pk, len(chosen))
            entry.done_at, entry.attempts = now(), entry.attempts + 1
    with ctx.db() as session:
        ids = session.scalars(
            select(Delivery.id)
            .where(Delivery.message_pk == message_pk, Delivery.status == DeliveryState.PENDING)
            .order_by(Delivery.id)
        ).all()
    ranges = [(ids[i], ids[min(i + CHUNK, len(ids)) - 1]) for i in range(0, len(ids), CHUNK)]
    # Every other worker process takes a chunk; rows of a chunk task lost with the broker
    # stay `pending` and retry_due picks them up (claims are compare-and-set: never twice).
    mine = ranges[:1] + _enqueue_chunks(ctx, message_pk, ranges[1:])
    return sum(send_chunk(ctx, message_pk, first, last) for first, last in mine)


def _named(ctx: WorkerContext, message_pk: int) -> set[str]:
    """The post's To/Cc addresses, parsed after the read: never while holding the write lock."""
    with ctx.db() as session:
        raw = session.scalar(
            select(RawMessage.data)
            .join(Message, Message.raw_id == RawMessage.id)
            .where(Message.id == message_pk)
        )
    return addresses_in(raw, "To", "Cc") if raw is not None else set()


def _enqueue_chunks(
    ctx: WorkerContext, message_pk: int, ranges: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Queue a SEND_CHUNK task per range; the ranges that could not be queued."""
    for done, (first, last) in enumerate(ranges):
        try:
            if ctx.sender is None:
                return ranges[done:]
            ctx.sender.send_task(SEND_CHUNK, args=[message_pk, first, last])
        except Exception as exc:  # noqa: BLE001 - the broker being down: this task sends them itself
            log.warning(
                "broker unavailable, sending chunks of message %s here: %s", message_pk, exc
            )
            return ranges[done:]
    return []


def send_chunk(ctx: WorkerContext, message_pk: int, first_id: int, last_id: int) -> int:
    """Send the pending rows of one post whose ids lie in [first_id, last_id]."""
    return send_message(
        ctx,
        message_pk,
        [Delivery.status == DeliveryState.PENDING, Delivery.id.between(first_id, last_id)],
    )


def claim(
    ctx: WorkerContext, message_pk: int, where: list[Any], limit: int = BATCH
) -> tuple[list[int], datetime]:
    """Atomically take up to `limit` rows matching `where` (compare-and-set); (ids, claim time)."""
    stamp = now()
    with transaction(ctx.db) as session:
        ids = session.scalars(
            select(Delivery.id)
            .where(Delivery.message_pk == message_pk, *where)
            .order_by(Delivery.id)
            .limit(limit)
        ).all()
        if not ids:
            return [], stamp
        stmt = (
            update(Delivery)
            .where(Delivery.id.in_(ids), *where)
            .values(status=DeliveryState.SENDING, claimed_at=stamp, attempts=Delivery.attempts + 1)
            .returning(Delivery.id)
        )
        return sorted(session.scalars(stmt).all()), stamp


def send_message(ctx: WorkerContext, message_pk: int, where: list[Any]) -> int:
    """Send the rows of one post matching `where`, claimed batch by batch, a wave at a time."""
    post = load_post(ctx, message_pk)
    if post is None:
        return 0
    sent = 0
    with relay_sessions.connect(ctx.settings.outbound) as out:
        while True:
            ids, stamp = claim(ctx, message_pk, where)
            if not ids:
                return sent
            sent += _send_batch(ctx, out, post, ids, stamp)


def _send_batch(
    ctx: WorkerContext, out: relay_sessions.Wave, post: Post, ids: list[int], stamp: datetime
) -> int:
    """Send each claimed row; once a whole wave failed to connect, the rest is deferred untried."""
    with ctx.db() as session:
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.address,
                Delivery.attempts,
                Delivery.created_at,
                Subscription.id.label("sub_id"),
                Subscription.status,
                Subscription.list_id,
                Subscription.kind,
                Subscription.thread_key,
                Message.status.label("post_status"),
            )
            .join(Message, Message.id == Delivery.message_pk)
            .outerjoin(Subscription, Subscription.id == Delivery.subscription_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
    if rows and rows[0].post_status != PostState.VISIBLE:
        # Hidden or removed since its fan-out: a copy not sent yet never is (nor is a post
        # hidden before its fan-out mailed to anyone).
        _mark(ctx, [r.id for r in rows], DeliveryState.CANCELLED, "the post is no longer shown")
        return 0
    gone = [r.id for r in rows if r.sub_id is None or r.status != SubscriptionState.ACTIVE]
    _mark(ctx, gone, DeliveryState.CANCELLED, "no longer subscribed")
    live = [r for r in rows if r.sub_id is not None and r.status == SubscriptionState.ACTIVE]
    ledger = Ledger(ctx, post, stamp)
    untried = 0
    for start in range(0, len(live), out.size):
        batch = live[start : start + out.size]
        if ledger.network_down:
            for row in batch:
                _finish(
                    ctx,
                    row.id,
                    DeliveryState.DEFERRED,
                    ledger.network_down,
                    row.attempts,
                    announce=False,
                )
            untried += len(batch)
            continue
        items = [
            relay_sessions.Outgoing(
                verp_address(
                    post.info,
                    verp_token(ctx.settings.secret_key, VERP_DELIVERY, row.id, row.created_at),
                ),
                row.address,
                post.copy_for(_unsubscribe_url(ctx, row)),
                post.eight_bit,
            )
            for row in batch
        ]
        began = time.perf_counter()
        results = out.send(items, functools.partial(ledger.handover, batch))
        ledger.record(batch, results, time.perf_counter() - began)
    ledger.flush()
    if untried:
        log.warning(
            "%d more copies of post %s deferred without a try: the relay %s cannot be reached (%s)",
            untried,
            post.pk,
            redact(ctx.settings.outbound),
            ledger.network_down,
        )
    return ledger.sent


def _unsubscribe_url(ctx: WorkerContext, row: Any) -> str:
    """The recipient's signed one-click link (a thread follower's leaves only that thread)."""
    return f"{ctx.settings.base_url}/unsubscribe/" + unsubscribe_token(
        ctx.settings.secret_key,
        row.list_id,
        row.address,
        row.thread_key if row.kind == SubscriptionKind.THREAD else 0,
    )


@dataclass(frozen=True)
class _Sql:
    hand: Any  # sending -> handing where the claim still holds, returning the ids
    unhand: Any
    sent: Any


def _table() -> Table:
    """Delivery's table (the declarative base types __table__ as any FromClause)."""
    table = Delivery.__table__
    assert isinstance(table, Table)
    return table


@functools.cache
def _statements() -> _Sql:
    """The per-wave statements, built once (Core on the table: no ORM coercion per wave)."""
    table = _table()
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
    return _Sql(
        hand=update(table)
        .where(
            table.c.id.in_(ids),
            table.c.status == DeliveryState.SENDING,
            table.c.claimed_at == bindparam("stamp"),
        )
        .values(status=DeliveryState.HANDING)
        .returning(table.c.id),
        unhand=update(table).where(table.c.id.in_(ids)).values(status=DeliveryState.SENDING),
        sent=update(table)
        .where(table.c.id.in_(ids), table.c.status == DeliveryState.HANDING)
        .values(status=DeliveryState.SENT, sent_at=bindparam("now"), last_error=""),
    )


class Ledger:
    """What one claimed batch did: claim checks, `handing` commits, the buffered `sent` marks."""

    def __init__(self, ctx: WorkerContext, post: Post, stamp: datetime) -> None:
        self.ctx, self.post, self.stamp = ctx, post, stamp
        self.unmarked: list[
            int
        ] = []  # `handing` rows whose 250 came: marked `sent` with the next commit
        self.sent = 0
        self.network_down = ""

    def handover(
        self, rows: Sequence[Any], indexes: list[int], send_dots: relay_sessions.SendDots
    ) -> set[int]:
        """The rows still ours become `handing` around their dots, the earlier ones `sent`
        (handing.around_dots)."""
        ids = {rows[i].id: i for i in indexes}
        sql = _statements()

        def take(conn: Connection) -> set[int]:
            held = conn.execute(sql.hand, {"ids": list(ids), "stamp": self.stamp}).scalars().all()
            self._mark_sent(conn)
            return {ids[i] for i in held}

        def give_back(conn: Connection, lost: set[int]) -> None:
            conn.execute(sql.unhand, {"ids": [rows[i].id for i in lost]})

        return handing.around_dots(self.ctx.writer, send_dots, take, give_back)

    def _mark_sent(self, conn: Any) -> None:
        if self.unmarked:
            conn.execute(_statements().sent, {"ids": self.unmarked, "now": now()})
            self.unmarked = []

    def record(self, rows: Sequence[Any], results: list[mailer.SendResult], seconds: float) -> None:
        """Log each delivered copy; record refusals and deferrals at once."""
        for row, result in zip(rows, results, strict=True):  # one result per row
            if result.ok:
                self.unmarked.append(row.id)
                self.sent += 1
                log.info(
                    "delivered post %s %s to %s: %s %s (%.1f ms)",
                    self.post.pk,
                    self.post.message_id,
                    row.address,
                    result.code,
                    result.detail,
                    seconds * 1000,
                )
            elif result.status == mailer.BOUNCED:
                _bounce(
                    self.ctx, row, f"{result.code} {result.detail}", bounces.refusal_kind(result)
                )
            elif result.status == mailer.DEFERRED:
                _finish(
                    self.ctx,
                    row.id,
                    DeliveryState.DEFERRED,
                    f"{result.code} {result.detail}".strip(),
                    row.attempts,
                )
        if results and all(
            r.status == mailer.DEFERRED and r.code == 0 and "final dot" not in r.detail
            for r in results
        ):
            self.network_down = results[0].detail

    def flush(self) -> None:
        """Mark the remaining `handing` rows whose 250 came as `sent`."""
        if self.unmarked:
            with self.ctx.writer.begin() as conn:
                self._mark_sent(conn)


def _mark(
    ctx: WorkerContext, delivery_ids: list[int], status: DeliveryState, detail: str = ""
) -> None:
    """One small write transaction for many rows (Core, no ORM session)."""
    if not delivery_ids:
        return
    values: dict[str, Any] = {"status": status, "last_error": detail}
    if status == DeliveryState.SENT:
        values["sent_at"] = now()
    with ctx.writer.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(delivery_ids)).values(**values))


def _finish(
    ctx: WorkerContext,
    delivery_id: int,
    status: DeliveryState,
    detail: str,
    attempts: int = 0,
    announce: bool = True,
) -> None:
    """Record the outcome of one try; a deferral past MAX_ATTEMPTS becomes a failure."""
    values: dict[str, Any] = {
        "status": status,
        "last_error": "" if status == DeliveryState.SENT else detail[:2000],
    }
    if status == DeliveryState.SENT:
        values["sent_at"] = now()
    elif status == DeliveryState.DEFERRED:
        if attempts >= MAX_ATTEMPTS:
            values["status"] = DeliveryState.FAILED
        else:
            values["next_attempt_at"] = now() + backoff(attempts)
    _mark_values(ctx, delivery_id, values)
    if values["status"] == DeliveryState.DEFERRED and announce:
        log.warning(
            "delivery %s deferred, next try in %s: the relay %s said: %s",
            delivery_id,
            backoff(attempts),
            redact(ctx.settings.outbound),
            detail,
        )


def _mark_values(ctx: WorkerContext, delivery_id: int, values: dict[str, Any]) -> None:
    with transaction(ctx.db) as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def _bounce(ctx: WorkerContext, row: Any, detail: str, kind: BounceKind) -> None:
    """A 5xx, never retried: a bounce (scored) if it is the recipient's, else a failed post."""
    with transaction(ctx.db) as session:
        # scored first: it takes the list's lock before any row, as the list's other writers do
        copy = bounces.Copy(session.get(Subscription, row.sub_id), row.address, now(), row.id)
        entries = bounces.counted(session, ctx.settings, copy, kind, detail)
        session.execute(
            update(Delivery)
            .where(Delivery.id == row.id)
            .values(
                status=DeliveryState.BOUNCED
                if kind == BounceKind.PERMANENT
                else DeliveryState.REFUSED,
                last_error=detail[:2000],
            )
        )
    ctx.enqueue(entries)
    if kind == BounceKind.PERMANENT:
        log.info("delivery %s to %s bounced: %s", row.id, row.address, detail)
    else:
        log.warning(
            "delivery %s to %s: the relay refused the message "
            "(a failed post, not counted against %s): %s",
            row.id,
            row.address,
            row.address,
            detail,
        )


def recover_stale(ctx: WorkerContext, stale_after: float = STALE_AFTER) -> None:
    """Claims older than stale_after: `handing` counts as sent, `sending` goes back to pending."""
    with transaction(ctx.db) as session:
        handing.recover_stale(
            session, Delivery, DeliveryState, now(), stale_after, status=DeliveryState.PENDING
        )


def retry_due(ctx: WorkerContext, stale_after: float = STALE_AFTER, horizon: float = 0.0) -> int:
    """Send deferred rows due (within `horizon` s) and pending rows nobody is working on."""
    recover_stale(ctx, stale_after)
    started = now()
    due = started + timedelta(seconds=horizon)
    old = started - timedelta(seconds=stale_after)
    # claimed_at < started: a row deferred again during this run waits for the next one.
    deferred = [
        Delivery.status == DeliveryState.DEFERRED,
        Delivery.next_attempt_at <= due,
        Delivery.claimed_at < started,
    ]
    orphaned = [Delivery.status == DeliveryState.PENDING, Delivery.created_at <= old]
    sent = 0
    for where in (deferred, orphaned):
        with ctx.db() as session:
            pks: Iterable[int] = session.scalars(
                select(Delivery.message_pk).where(*where).distinct()
            ).all()
        for pk in pks:
            sent += send_message(ctx, pk, where)
    return sent
