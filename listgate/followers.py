"""Follows and mutes of a thread merged into another: they move with its posts, and each person
keeps one choice for the thread she gets, her latest."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listgate.models import Subscription
from listgate.models.archive import utcnow
from listgate.states import SubscriptionKind, SubscriptionState

CHOICES = (SubscriptionKind.THREAD, SubscriptionKind.MUTE)


def move(session: Session, old: int, new: int) -> None:
    """Follows and mutes of a merged thread move to the survivor; rows are never deleted (deliveries
    point at them).

    Where the address already has the same kind of row on the survivor, the livelier of the two
    rows goes on there, and the other ends, staying on the old thread with its history: the row
    itself, not a copy of its state, since a confirmation mailed or an approval asked for before
    the merge names the row.
    """
    rank = {
        SubscriptionState.ACTIVE: 4,
        SubscriptionState.AWAITING: 3,
        SubscriptionState.PENDING: 2,
        SubscriptionState.SUSPENDED: 1,
    }
    kept = {
        (s.address, s.kind): s
        for s in session.scalars(select(Subscription).where(Subscription.thread_key == new))
    }
    for sub in session.scalars(select(Subscription).where(Subscription.thread_key == old)).all():
        there = kept.get((sub.address, sub.kind))
        if there is None:
            sub.thread_key = new
            continue
        left = sub  # the row that ends
        if rank.get(sub.status, 0) > rank.get(there.status, 0):
            # one row per address, kind and thread: the survivor's steps aside first
            there.thread_key = 0
            session.flush()
            sub.thread_key = new
            session.flush()
            there.thread_key, left = old, there
        if left.status != SubscriptionState.ENDED:
            left.status, left.ended_at, left.end_reason = (
                SubscriptionState.ENDED,
                utcnow(),
                f"thread merged into {new}",
            )
    session.flush()
    _latest_choice(session, new)


def _latest_choice(session: Session, thread: int) -> None:
    """Follow or mute, as one chooses them on one thread: where the merge brought one of each
    (a person followed one thread and muted the other), the older choice ends."""
    live = session.scalars(
        select(Subscription)
        .where(
            Subscription.thread_key == thread,
            Subscription.kind.in_(CHOICES),
            Subscription.status == SubscriptionState.ACTIVE,
        )
        .order_by(  # when each was chosen: an active row was confirmed then (made at once: NULL)
            func.coalesce(Subscription.confirmed_at, Subscription.created_at), Subscription.id
        )
    ).all()
    latest = {sub.address.lower(): sub for sub in live}  # ordered: the last one is the latest
    for sub in live:
        if latest[sub.address.lower()] is not sub:
            sub.status, sub.ended_at, sub.end_reason = (
                SubscriptionState.ENDED,
                utcnow(),
                f"thread merged into {thread}: {latest[sub.address.lower()].kind} chosen later",
            )
    session.flush()
