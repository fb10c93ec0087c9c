"""Who is owed a period's digest, and which of its posts each of them already had.

worker/digest.py builds and sends the digests; this module only reads: the digest subscribers
of a list and period (receives, subscribers), the posts each had one by one, while on every
post, or in a digest of the other frequency (had), and the addresses an earlier run claimed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from listgate import digests
from listgate.digests import Period
from listgate.models import Bounce, Delivery, DigestSent, Message, Person, PostHiding, Subscription
from listgate.states import (
    BounceKind,
    DeliveryState,
    DigestFormat,
    DigestState,
    SubscriptionKind,
    SubscriptionState,
)
from listgate.subscriptions import SWITCHED_TO_LIST

# A copy in these states never reached the reader (refused by the relay as it went out, for the
# reader's address or for itself, included); in WAITING it has not yet, and will not when its
# subscription row is no longer active (worker/delivery.py cancels it when it tries it again).
NEVER_SENT = (
    DeliveryState.CANCELLED,
    DeliveryState.FAILED,
    DeliveryState.BOUNCED,
    DeliveryState.REFUSED,
)
# A copy that went out and was reported failed since, for the reader's address or mailbox (a DSN
# that blames the message or names someone else, a forwarding address, is REFUSED: the reader
# may well have had the copy)
REPORTED_LOST = (BounceKind.PERMANENT, BounceKind.TRANSIENT)
WAITING = (DeliveryState.PENDING, DeliveryState.DEFERRED)
# A period's digest row a later run claims again: never sent (deferred by the relay, or cancelled
# by its retry while the reader was not owed it: suspended by bounces, or gone). A run sends it
# only to whom it owes it then, so a reader resumed in time gets it, once.
TAKEN_BACK = (DigestState.DEFERRED, DigestState.CANCELLED)
CHUNK = 500  # digest subscribers whose posts had are read together
# the address's list row, beside its digest row (made once: receives is called for every period)
_on_list = aliased(Subscription)


def receives(period: Period) -> ColumnElement[bool]:
    """Whose digest row gets the period's digest: active, or left for every post since it began.

    Switching to every post mid-period must not lose the posts that came while on the digest:
    they still come in the period's digest (when the address is still on the list).
    """
    still_member = (
        select(_on_list.id)
        .where(
            _on_list.list_id == Subscription.list_id,
            _on_list.address == Subscription.address,
            _on_list.kind == SubscriptionKind.LIST,
            _on_list.status == SubscriptionState.ACTIVE,
        )
        .exists()
    )
    switched = and_(
        Subscription.status == SubscriptionState.ENDED,
        Subscription.end_reason == SWITCHED_TO_LIST,
        Subscription.confirmed_at.is_not(None),  # a digest once had, not a request never confirmed
        Subscription.ended_at >= period.bounds()[0],
        still_member,
    )
    return and_(
        Subscription.kind == SubscriptionKind.DIGEST,
        Subscription.digest_frequency == period.frequency,
        or_(Subscription.status == SubscriptionState.ACTIVE, switched),
    )


def subscribers(session: Session, list_id: int, period: Period) -> list[tuple[int, str, str]]:
    """(subscription id, address, format) of those who get the period's digest (see receives),
    confirmed by the period's end."""
    end = period.bounds()[1]
    return [
        (i, a, f or DigestFormat.MIME)
        for i, a, f in session.execute(
            select(Subscription.id, Subscription.address, Person.digest_format)
            .outerjoin(Person, Person.address == Subscription.address)
            .where(
                Subscription.list_id == list_id,
                receives(period),
                or_(Subscription.confirmed_at.is_(None), Subscription.confirmed_at < end),
            )
        ).all()
    ]


@dataclass
class _Post:
    """A post the period's digest offers: its Message-ID, when it was published and put back
    (the times a digest could have offered it), and the stretches it was hidden."""

    message_id: str
    published: datetime
    offered: list[datetime]
    hidden: list[tuple[datetime, datetime | None]] = field(default_factory=list)

    def visible_at(self, at: datetime) -> bool:
        return not any(h <= at and (r is None or at < r) for h, r in self.hidden)


def _offered(
    session: Session, list_id: int, period: Period
) -> tuple[dict[int, _Post], ColumnElement[bool]]:
    """The period's posts by id, published in it or put back in it (digests.put_back), and the
    condition that selects them (a busy list's week has more posts than a statement may bind
    parameters: they are named by the condition, not by their ids)."""
    start, end = period.bounds()
    published = digests.published
    back = select(digests.put_back(list_id, period).subquery().c[0])
    offered = and_(
        Message.list_id == list_id,
        or_(and_(published >= start, published < end), Message.id.in_(back)),
    )
    found = {
        pk: _Post(message_id, at, [at])
        for pk, message_id, at in session.execute(
            select(Message.id, Message.message_id, published).where(offered)
        )
    }
    for pk, hidden_at, restored_at in session.execute(
        select(PostHiding.message_pk, PostHiding.hidden_at, PostHiding.restored_at)
        .join(Message, Message.id == PostHiding.message_pk)
        .where(offered)
    ):
        found[pk].hidden.append((hidden_at, restored_at))
        if restored_at is not None:
            found[pk].offered.append(restored_at)
    return found, offered


def _had(
    session: Session, list_id: int, period: Period, digest_rows: list[Subscription]
) -> dict[int, set[str]]:
    """Per digest row: the Message-IDs of the period's posts its address got one by one, that
    came while it was on every post (a muted thread's too), or that it had in an earlier digest
    (of the other frequency: daily, then weekly since, the days whose daily digest it had; the
    other way round, the week's; or, for a post put back after readers' reports hid it, the
    digest of its day or week, made while it was visible). Its digest leaves them out, no post
    comes twice. A digest made while the post was hidden went without it: put back, it comes.
    A copy that never reached the reader was never had: the digest brings that post. Refused by
    the relay (BOUNCED: the reader's mailbox; REFUSED: the message), reported failed by a DSN
    since, cancelled (its list or thread row ended meanwhile: a switch to the digest while the
    relay deferred it), given up (FAILED), or still waiting (PENDING, DEFERRED) for a row no
    longer active, which the next try would cancel: the digest's claim cancels it
    (worker.digest.take_copies). The posts of
    the period before the digest row last started are owed as the others (a newcomer's first
    digest holds the day's posts; one who leaves and comes back the same day is a newcomer
    again: the row keeps only its last start). A few statements for all the rows, however many
    subscribers. A digest row left for every post owes only the posts of before it was left."""
    start, end = period.bounds()
    addresses = sorted({r.address for r in digest_rows})
    posts, offered_here = _offered(session, list_id, period)
    delivered: defaultdict[str, set[str]] = defaultdict(set)
    never_sent: defaultdict[str, set[str]] = defaultdict(set)
    reported_lost = (
        select(Bounce.id)
        .where(Bounce.delivery_id == Delivery.id, Bounce.kind.in_(REPORTED_LOST))
        .exists()
    )
    for address, message_id, status, row_status, reported in session.execute(
        select(
            Delivery.address,
            Message.message_id,
            Delivery.status,
            Subscription.status,
            reported_lost,
        )
        .join(Message, Delivery.message_pk == Message.id)
        .outerjoin(Subscription, Subscription.id == Delivery.subscription_id)
        .where(offered_here, Delivery.address.in_(addresses))
    ):
        lost = (
            reported
            or status in NEVER_SENT
            or (status in WAITING and row_status != SubscriptionState.ACTIVE)
        )
        (never_sent if lost else delivered)[address].add(message_id)
    # the digests that could have offered them: from a week before the first time one of them
    # was published or put back (a week's digest is dated its Monday) to the last (a run that
    # catches up an older day comes after a digest that had its post, put back since)
    offered = [at for p in posts.values() for at in p.offered]
    earliest, latest = min([start, *offered]), max([end, *offered])
    for address, frequency, day, made, sent in session.execute(
        select(
            DigestSent.address,
            DigestSent.frequency,
            DigestSent.day,
            DigestSent.created_at,
            func.coalesce(DigestSent.sent_at, DigestSent.created_at),
        ).where(
            DigestSent.list_id == list_id,
            DigestSent.address.in_(addresses),
            DigestSent.status == DigestState.SENT,  # deferred: it may yet be cancelled
            DigestSent.day > earliest.date() - timedelta(days=7),
            DigestSent.day <= latest.date(),
            # not this period's own (a run claims an address's once)
            or_(DigestSent.frequency != period.frequency, DigestSent.day != period.start),
        )
    ):
        first, after = Period(frequency, day).bounds()
        # what the digest held: the posts it offered (published or put back in its period before
        # it went out: all of them, but for a run of a day not over yet) that were visible when
        # it was made
        delivered[address].update(
            p.message_id
            for p in posts.values()
            if p.visible_at(made) and any(first <= at < min(after, sent) for at in p.offered)
        )
    every_post = {
        row.address: row
        for row in session.scalars(
            select(Subscription).where(
                Subscription.list_id == list_id,
                Subscription.address.in_(addresses),
                Subscription.kind == SubscriptionKind.LIST,
                Subscription.thread_key == 0,
            )
        )
    }
    had = {}
    for row in digest_rows:
        got = set(delivered.get(row.address, ()))
        stretch = _on_every_post(every_post.get(row.address), row)
        if stretch is not None:
            since, until = stretch
            stretched = {
                p.message_id
                for p in posts.values()
                if p.published >= since and (until is None or p.published < until)
            }
            got.update(stretched - never_sent.get(row.address, set()))
        if row.status == SubscriptionState.ENDED and row.ended_at is not None:
            # left for every post (receives): its digest holds only the time before; a copy of
            # a later post lost to the mailbox is every post's to score, not a digest's to bring
            got.update(p.message_id for p in posts.values() if p.published >= row.ended_at)
        had[row.id] = got
    return had


def _on_every_post(
    row: Subscription | None, digest_row: Subscription
) -> tuple[datetime, datetime | None] | None:
    """[from, until) of the address's last stretch on every post (row: its list row; until None:
    still on it).

    Only the last stretch is known (the row keeps when it last started and ended); one ended
    after the digest started again was a request never confirmed: the stretch ended then. A
    stretch suspended by bounces ended when the mail stopped: the posts after were never sent.
    """
    if row is None or row.confirmed_at is None:
        return None
    stopped = row.suspended_at if _suspended_since_start(row) else None
    if row.status == SubscriptionState.ACTIVE:
        return row.confirmed_at, None
    if row.status == SubscriptionState.SUSPENDED:
        return row.confirmed_at, stopped
    until = min(t for t in (row.ended_at or row.confirmed_at, stopped) if t is not None)
    if digest_row.status == SubscriptionState.ACTIVE and digest_row.confirmed_at is not None:
        until = min(until, digest_row.confirmed_at)
    return row.confirmed_at, until


def _suspended_since_start(row: Subscription) -> bool:
    """True when bounces stopped the row's mail after it last started (a resume starts it again)."""
    return (
        row.suspended_at is not None
        and row.confirmed_at is not None
        and row.suspended_at >= row.confirmed_at
    )


def had(session: Session, list_id: int, period: Period, sub_ids: list[int]) -> dict[int, set[str]]:
    """Per digest subscription of sub_ids: the Message-IDs of the period's posts it already had
    (see _had), read CHUNK subscriptions at a time."""
    found: dict[int, set[str]] = {}
    for at in range(0, len(sub_ids), CHUNK):  # bound the statements' parameters
        chunk = sub_ids[at : at + CHUNK]
        rows = list(session.scalars(select(Subscription).where(Subscription.id.in_(chunk))))
        found.update(_had(session, list_id, period, rows))
    return found


def claimed(session: Session, list_id: int, period: Period) -> set[str]:
    """The addresses whose digest of the period an earlier run claimed and that no run takes
    back (all but TAKEN_BACK): a run looking back over days already done skips them at once
    rather than building and claiming each again (worker.digest's claim stays the guard)."""
    return set(
        session.scalars(
            select(DigestSent.address).where(
                DigestSent.list_id == list_id,
                DigestSent.frequency == period.frequency,
                DigestSent.day == period.start,
                DigestSent.status.not_in(TAKEN_BACK),
            )
        )
    )
