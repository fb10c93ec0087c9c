"""Digests, daily or weekly per subscriber: one per (list, address, frequency, period), once."""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.orm import Session

from listgate import digests, dispatch, privacy, store
from listgate.db import rowcount, transaction
from listgate.digests import Period
from listgate.models import (
    Delivery,
    DigestSent,
    MailingList,
    Message,
    OutboxEntry,
    RawMessage,
    Subscription,
    Thread,
)
from listgate.states import BounceKind, DeliveryState, DigestFrequency, DigestState
from listgate.subscriptions import unsubscribe_token
from listgate.tokens import VERP_DIGEST, verp_token
from worker import bounces, handing, mailer, outbox, relay_sessions
from worker import digest_owed as owed
from worker.context import WorkerContext
from worker.digest_mail import Entry, build
from worker.headers import ListInfo, verp_address

log = logging.getLogger(__name__)

CATCH_UP = 3  # days the daily job looks back (a beat that was down at midnight still sends them)
# A relay's answer to a digest (ABANDONED, a send given up before the final dot, is sent again
# like a deferral).
_OUTCOME = {
    mailer.SENT: DigestState.SENT,
    mailer.DEFERRED: DigestState.DEFERRED,
    mailer.BOUNCED: DigestState.BOUNCED,
    mailer.ABANDONED: DigestState.DEFERRED,
}


@dataclass(frozen=True)
class Batch:
    """One list's digest of one period, and who gets it."""

    info: ListInfo
    list_id: int
    subject: str
    period: Period
    entries: list[Entry]


def default_day() -> date:
    """Yesterday (UTC): the last complete day."""
    return (datetime.now(UTC) - timedelta(days=1)).date()


def periods(day: date | None = None) -> list[Period]:
    """The periods a run covers: the day (or the last CATCH_UP days, and at least every day of
    the last complete week and of the week so far) and the last complete week.

    A reader who changes from the weekly digest to the daily one no longer gets the week's
    digest: the days of the week before the change come as daily digests instead (the days
    already had in a weekly digest are left out of them, see digest_owed). The change may come
    before the run that sends the week's digest (the beat down over the Sunday night): the days
    of that week are still covered, by the first run of the next week.
    """
    last = day or default_day()
    week = digests.last_complete_week(last + timedelta(days=1))
    back = max(CATCH_UP, (last - week.start).days + 1)
    days = [last] if day else [last - timedelta(days=n) for n in range(back)]
    return [Period(DigestFrequency.DAILY, d) for d in days] + [week]


def entries(session: Session, mlist: MailingList, period: Period) -> list[Entry]:
    """The period's visible posts with their thread subjects and raw bytes, in order."""
    posts = digests.posts(session, mlist, period)
    if not posts:
        return []
    subjects = dict(
        session.execute(
            select(Thread.id, Thread.subject).where(Thread.id.in_({p.thread_id for p in posts}))
        ).all()
    )
    raws = dict(
        session.execute(
            select(RawMessage.id, RawMessage.data).where(
                RawMessage.id.in_({p.raw_id for p in posts})
            )
        ).all()
    )
    return [Entry.of(p, subjects.get(p.thread_id, ""), raws.get(p.raw_id, b"")) for p in posts]


def batch(ctx: WorkerContext, session: Session, mlist: MailingList, period: Period) -> Batch:
    """What every subscriber of mlist gets for period."""
    found = entries(session, mlist, period)
    return Batch(
        ListInfo(mlist.name, mlist.title, ctx.settings.domain, ctx.settings.base_url),
        mlist.id,
        digests.subject(mlist, period, len(found)),
        period,
        found,
    )


def _claim(
    ctx: WorkerContext,
    list_id: int,
    address: str,
    period: Period,
    stamp: datetime,
    message_ids: Collection[str] = (),
) -> int | None:
    """The (list, address, frequency, day) row's id if this run should send it (new, deferred or
    cancelled unsent),
    claimed with stamp; claimed, the copies of its posts (message_ids) still waiting for the
    address are cancelled (take_copies)."""
    with transaction(ctx.db) as session:
        row_id = session.scalar(
            store.of(session)
            .insert(DigestSent)
            .values(
                list_id=list_id,
                address=address,
                day=period.start,
                frequency=period.frequency,
                status=DigestState.SENDING,
                message_count=len(message_ids),
                last_error="",
                created_at=stamp,
                claimed_at=stamp,
            )
            .on_conflict_do_nothing(index_elements=["list_id", "address", "frequency", "day"])
            .returning(DigestSent.id)
        )
        if row_id is None:
            # there already: sent, being sent by another run, or never sent (taken back here:
            # deferred, or cancelled by a retry while the reader was not owed it, suspended)
            row_id = session.scalar(
                update(DigestSent)
                .where(
                    DigestSent.list_id == list_id,
                    DigestSent.address == address,
                    DigestSent.day == period.start,
                    DigestSent.frequency == period.frequency,
                    DigestSent.status.in_(owed.TAKEN_BACK),
                )
                .values(status=DigestState.SENDING, claimed_at=stamp)
                .returning(DigestSent.id)
            )
        if row_id is not None:
            take_copies(session, list_id, address, message_ids)
    return row_id


def take_copies(session: Session, list_id: int, address: str, message_ids: Collection[str]) -> None:
    """Cancel the copies of these posts to address that have not gone out yet (PENDING or
    DEFERRED): its digest brings the posts (digest_owed counts such a copy as never had when
    its subscription row is no longer active, which its next try would cancel anyway)."""
    if not message_ids:
        return
    session.execute(
        update(Delivery)
        .where(
            Delivery.address == address,
            Delivery.status.in_(owed.WAITING),
            Delivery.message_pk.in_(
                select(Message.id).where(
                    Message.list_id == list_id, Message.message_id.in_(sorted(message_ids))
                )
            ),
        )
        .values(status=DeliveryState.CANCELLED, last_error="in the digest")
    )


def send_digests(ctx: WorkerContext, day: date | None = None) -> int:
    """Send every digest due (see periods) to subscribers that have not had it; the count sent."""
    return sum(_send_period(ctx, period) for period in periods(day))


def _for(
    session: Session, mlist: MailingList, found: Batch, sub_ids: list[int]
) -> dict[int, Batch]:
    """The list's digest of the period as each subscription of sub_ids gets it: without what it
    had."""
    had = owed.had(session, mlist.id, found.period, sub_ids)
    own = {}
    for sub_id in sub_ids:
        kept = [e for e in found.entries if e.message_id not in had.get(sub_id, set())]
        own[sub_id] = replace(
            found, entries=kept, subject=digests.subject(mlist, found.period, len(kept))
        )
    return own


def _send_period(ctx: WorkerContext, period: Period) -> int:
    with ctx.db() as session:
        lists = session.scalars(
            select(MailingList).where(
                MailingList.id.in_(select(Subscription.list_id).where(owed.receives(period)))
            )
        ).all()
        work: list[tuple[Batch, str, str]] = []
        for mlist in lists:
            done = owed.claimed(session, mlist.id, period)
            subs = [s for s in owed.subscribers(session, mlist.id, period) if s[1] not in done]
            found = batch(ctx, session, mlist, period) if subs else None
            if found is None or not found.entries:
                continue
            theirs = _for(session, mlist, found, [sub_id for sub_id, _, _ in subs])
            work.extend(
                (theirs[sub_id], address, fmt)
                for sub_id, address, fmt in subs
                if theirs[sub_id].entries
            )
    sent = 0
    with relay_sessions.connect(ctx.settings.outbound) as out:
        for start in range(0, len(work), out.size):
            stamp = datetime.now(UTC)
            claimed = []
            for own, address, fmt in work[start : start + out.size]:
                ids = [e.message_id for e in own.entries]
                row_id = _claim(ctx, own.list_id, address, period, stamp, ids)
                if row_id is not None:
                    claimed.append(_Claimed(row_id, own, address, fmt))
            sent += _deliver(ctx, out, claimed, stamp)
    if work:
        log.info("%s digests of %s: %d sent", period.frequency, period.label, sent)
    return sent


@dataclass(frozen=True)
class _Claimed:
    """A digest this run or resend claimed: its row, what it brings, to whom, in what form."""

    row_id: int
    found: Batch
    address: str
    fmt: str


def _outgoing(ctx: WorkerContext, digest: _Claimed) -> relay_sessions.Outgoing:
    """The digest as the relay gets it, from its own VERP address."""
    found, address = digest.found, digest.address
    url = f"{ctx.settings.base_url}/unsubscribe/" + unsubscribe_token(
        ctx.settings.secret_key, found.list_id, address
    )
    data = build(
        found.info,
        found.period,
        found.entries,
        to=address,
        subject=found.subject,
        unsubscribe_url=url,
        message_id=digests.message_id(found.period, ctx.settings.domain),
        fmt=digest.fmt,
    )
    with ctx.db() as session:
        made = privacy.copy_made(session, VERP_DIGEST, digest.row_id)
    wire = relay_sessions.wire_form(ctx.signer.sign(data))
    # the copy itself (its row knows when it went out), so a late bounce about it is not counted
    # against the subscription started again since, nor against a later row given its id
    token = verp_token(ctx.settings.secret_key, VERP_DIGEST, digest.row_id, made)
    return relay_sessions.Outgoing(
        verp_address(found.info, token), address, wire, eight_bit=not wire.isascii()
    )


def _handover(
    ctx: WorkerContext,
    row_ids: list[int],
    stamp: datetime,
    indexes: list[int],
    send_dots: relay_sessions.SendDots,
) -> set[int]:
    """The rows still claimed with stamp become `handing` around their dots, as the copies' do
    (handing.around_dots)."""
    ids = {row_ids[i]: i for i in indexes}
    table = DigestSent.__table__
    assert isinstance(table, Table)

    def take(conn: Connection) -> set[int]:
        held = conn.execute(
            update(table)
            .where(
                table.c.id.in_(list(ids)),
                table.c.status == DigestState.SENDING,
                table.c.claimed_at == stamp,
            )
            .values(status=DigestState.HANDING)
            .returning(table.c.id)
        ).scalars()
        return {ids[i] for i in held}

    def give_back(conn: Connection, lost: set[int]) -> None:
        conn.execute(
            update(table)
            .where(table.c.id.in_([row_ids[i] for i in lost]))
            .values(status=DigestState.SENDING)
        )

    return handing.around_dots(ctx.writer, send_dots, take, give_back)


def _deliver(
    ctx: WorkerContext,
    out: relay_sessions.Wave,
    claimed: list[_Claimed],
    stamp: datetime,
    outbox_id: int = 0,
) -> int:
    """Send claimed digests (one wave) and record each outcome; how many went out. A deferral
    is retried by the outbox sweeper.

    From the periodic run (outbox_id 0) a deferral records a RESEND_DIGEST entry; from a resend
    it releases that entry again, so the sweeper's per-entry backoff and give-up apply.
    """
    if not claimed:
        return 0
    items = [_outgoing(ctx, digest) for digest in claimed]
    results = out.send(items, functools.partial(_handover, ctx, [d.row_id for d in claimed], stamp))
    return sum(
        _record(ctx, digest, result, stamp, outbox_id)
        for digest, result in zip(claimed, results, strict=True)
    )


def _record(
    ctx: WorkerContext,
    digest: _Claimed,
    result: mailer.SendResult,
    stamp: datetime,
    outbox_id: int,
) -> int:
    """A digest's outcome, on its row while the claim is still this run's; 1 when it went out."""
    if result.status == mailer.ABANDONED:  # the claim was taken over before the final dot
        return 0
    status = _OUTCOME[result.status]
    tried = datetime.now(UTC)
    scored: list[OutboxEntry] = []
    with transaction(ctx.db) as session:
        mine = session.execute(
            update(DigestSent)
            .where(
                DigestSent.id == digest.row_id,
                DigestSent.claimed_at == stamp,
                DigestSent.status.in_((DigestState.SENDING, DigestState.HANDING)),
            )
            .values(
                status=status,
                last_error="" if result.ok else result.detail[:2000],
                sent_at=tried if result.ok else None,
            )
        )
        if rowcount(mine) != 1:  # the sweeper took the claim over (this run outlived it)
            return 1 if result.ok else 0
        if status == DigestState.BOUNCED:
            scored = _refused(ctx, session, digest.row_id, result, tried)
        if status == DigestState.DEFERRED and outbox_id:
            session.execute(
                update(OutboxEntry).where(OutboxEntry.id == outbox_id).values(done_at=None)
            )
        elif status == DigestState.DEFERRED:
            # Not enqueued now: the outbox sweeper sends it after its backoff (as for notices).
            dispatch.record(session, dispatch.RESEND_DIGEST, digest.row_id)
    ctx.enqueue(scored)
    if status == DigestState.DEFERRED:
        log.warning(
            "digest %s (%s) to %s deferred, retried with backoff: %s",
            digest.row_id,
            digest.found.period.label,
            digest.address,
            result.detail,
        )
    return 1 if result.ok else 0


def recover_stale(ctx: WorkerContext, stale_after: float) -> None:
    """Claims older than stale_after, left by a worker that died: `handing` counts as sent (the
    relay had the final dot), `sending` is sent again through the outbox (RESEND_DIGEST)."""
    with transaction(ctx.db) as session:
        again = handing.recover_stale(
            session,
            DigestSent,
            DigestState,
            datetime.now(UTC),
            stale_after,
            status=DigestState.DEFERRED,
            last_error="sent again: the worker stopped before the relay took it",
        )
        entries = [dispatch.record(session, dispatch.RESEND_DIGEST, row_id) for row_id in again]
    ctx.enqueue(entries)


def _refused(
    ctx: WorkerContext,
    session: Session,
    row_id: int,
    result: mailer.SendResult,
    tried: datetime,
) -> list[OutboxEntry]:
    """A 5xx to a digest, scored as a post's copy is: against the subscription when it is the
    recipient's (worker/bounces.py refusal_kind), else a refused message counted against nobody."""
    kind = bounces.refusal_kind(result)
    copy = replace(bounces.copy_named(session, VERP_DIGEST, row_id), sent_at=tried)
    detail = f"{result.code} {result.detail}".strip()
    if kind == BounceKind.PERMANENT:
        log.info("digest %s to %s bounced: %s", row_id, copy.address, detail)
    else:
        log.warning(
            "digest %s to %s: the relay refused the message (not counted against %s): %s",
            row_id,
            copy.address,
            copy.address,
            detail,
        )
    return bounces.counted(session, ctx.settings, copy, kind, detail)


def resend(ctx: WorkerContext, outbox_id: int) -> int:
    """Send again a digest a relay deferred (task RESEND_DIGEST); 1 when it went out.

    The outbox entry and the digests_sent row are both claimed by compare-and-set, so a
    re-queued duplicate of the task, or the periodic run catching up, never sends a second copy.
    Deferred again: the entry is released and the sweeper re-queues it with backoff.
    """
    with transaction(ctx.db) as session:
        entry = outbox.claim(session, outbox_id)
        row_id = entry.ref_id if entry is not None else 0
        row = session.get(DigestSent, row_id)
        taken = update(DigestSent).where(
            DigestSent.id == row_id, DigestSent.status == DigestState.DEFERRED
        )
        stamp = datetime.now(UTC)
        if (
            row is None
            or rowcount(session.execute(taken.values(status=DigestState.SENDING, claimed_at=stamp)))
            != 1
        ):
            return 0
        mlist = session.get_one(MailingList, row.list_id)
        period = Period(row.frequency, row.day)
        sub = next(
            ((i, f) for i, a, f in owed.subscribers(session, mlist.id, period) if a == row.address),
            None,
        )
        found = batch(ctx, session, mlist, period)
        if sub is not None:
            found = _for(session, mlist, found, [sub[0]])[sub[0]]
        address = row.address
        if sub is None or not found.entries:
            row.status = DigestState.CANCELLED
            return 0
        take_copies(session, mlist.id, address, [e.message_id for e in found.entries])
    with relay_sessions.connect(ctx.settings.outbound, size=1) as out:
        return _deliver(ctx, out, [_Claimed(row_id, found, address, sub[1])], stamp, outbox_id)
