"""Moderators letting people into private and members-only lists (web moderation page and CLI)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import administration, limits
from listgate.models import MailingList, Subscription
from listgate.states import SubscriptionState
from listgate.store import lock_list
from listgate.subscriptions import (
    REQUESTS,
    Outcome,
    SubscriptionError,
    end,
    notice,
    start,
    thread_subject,
)


def approve(session: Session, sub: Subscription, by: str) -> Outcome:
    """A moderator lets an address in: active now (welcome mail), or at once when it confirms."""
    mlist = _decided(session, sub)
    limits.within(limits.ACTOR, by)
    if sub.status not in REQUESTS:
        raise SubscriptionError(f"{sub.address} has no request waiting on {mlist.name}")
    if sub.status == SubscriptionState.PENDING:
        sub.approved_by = by
        administration.record(
            session, mlist, by, "approve subscription", _what(sub) + ", before it is confirmed"
        )
        return Outcome(
            sub,
            f"{sub.address} will be subscribed as soon as they confirm their address.",
            [],
            mlist.name,
            sub.thread_key,
        )
    start(session, mlist, sub.address, sub.kind, sub.thread_key, approved_by=by)
    administration.record(session, mlist, by, "approve subscription", _what(sub))
    entry = notice(
        session,
        mlist,
        "welcome",
        sub.address,
        sub.id,
        kind=sub.kind,
        thread_id=sub.thread_key,
        subject=thread_subject(session, sub.thread_key),
    )
    return Outcome(
        sub,
        f"{sub.address} is now subscribed to {mlist.name}.",
        [entry],
        mlist.name,
        sub.thread_key,
    )


def refuse(session: Session, sub: Subscription, by: str, reason: str = "") -> Outcome:
    """A moderator turns a request down: it ends, and a confirmed address is told (with the
    reason); one never confirmed is not mailed again, since nobody there may have asked. TooLong."""
    mlist = _decided(session, sub)
    limits.within(limits.ACTOR, by)
    limits.within(limits.REASON, reason)
    if sub.status not in REQUESTS:
        raise SubscriptionError(f"{sub.address} has no request waiting on {mlist.name}")
    confirmed = sub.status == SubscriptionState.AWAITING
    end(session, [sub], f"refused by {by}")
    administration.record(
        session, mlist, by, "refuse subscription", _what(sub) + (f": {reason}" if reason else "")
    )
    said = f"The request of {sub.address} to join {mlist.name} is refused."
    if not confirmed:
        return Outcome(sub, f"{said} It was never confirmed: nobody is mailed.", [], mlist.name)
    entry = notice(session, mlist, "refused", sub.address, sub.id, reason=reason)
    return Outcome(sub, said, [entry], mlist.name)


def _decided(session: Session, sub: Subscription) -> MailingList:
    """sub's list, locked (the order every writer of a list takes), and sub as it is now: two
    moderators deciding at once decide one after the other, the second on what the first did."""
    mlist = session.get_one(MailingList, sub.list_id)
    lock_list(session, mlist)
    session.flush()  # what the caller changed is kept, not read over
    session.refresh(sub)
    return mlist


def let_in(session: Session, mlist: MailingList, by: str) -> list[Subscription]:
    """Approve every confirmed request waiting on mlist (it needs no moderator any more): each
    address gets its welcome mail; the requests let in, oldest first."""
    let = []
    for sub in still_waiting(waiting(session, [mlist.id])):
        approve(session, sub, by)
        let.append(sub)
    return let


def still_waiting(subs: Iterable[Subscription]) -> Iterator[Subscription]:
    """Each of subs whose request still waits when its turn comes: deciding one can end another
    (approving every post ends a request for the digest the same address made)."""
    return (sub for sub in subs if sub.status in REQUESTS)


def _what(sub: Subscription) -> str:
    """The request as the audit log names it: the address and what it asked for."""
    return f"{sub.address} ({sub.kind}{' ' + str(sub.thread_key) if sub.thread_key else ''})"


def waiting(session: Session, list_ids: Iterable[int]) -> list[Subscription]:
    """Confirmed requests that wait for a moderator, oldest first."""
    return list(
        session.scalars(
            select(Subscription)
            .where(
                Subscription.list_id.in_(tuple(list_ids)),
                Subscription.status == SubscriptionState.AWAITING,
            )
            .order_by(Subscription.created_at)
        )
    )


def requests_of(session: Session, mlist: MailingList, address: str) -> list[Subscription]:
    """The requests of address on mlist a moderator can decide on (confirmed or not yet)."""
    return list(
        session.scalars(
            select(Subscription)
            .where(
                Subscription.list_id == mlist.id,
                Subscription.address == address.strip().lower(),
                Subscription.status.in_(REQUESTS),
            )
            .order_by(Subscription.id)
        )
    )
