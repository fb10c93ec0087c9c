"""Creating lists and administrators' subscriptions (the lifecycle: listgate.subscriptions)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import subscriptions
from listgate.addresses import MAX_LIST_NAME, valid_list_name
from listgate.limits import DESCRIPTION, TITLE, within
from listgate.models import MailingList, Subscription
from listgate.states import ListPolicy, SubscriptionKind, SubscriptionState


class ListError(ValueError):
    """A list operation that cannot be done; the message says why."""


def get(session: Session, name: str) -> MailingList | None:
    """The list called name, or None (names are ASCII: a look-alike such as U+212A is none)."""
    if not name.isascii():
        return None
    return session.scalars(select(MailingList).where(MailingList.name == name.lower())).first()


def require(session: Session, name: str) -> MailingList:
    """The list called name, or ListError."""
    mlist = get(session, name)
    if mlist is None:
        raise ListError(f"no list named {name!r}")
    return mlist


def create(
    session: Session,
    name: str,
    title: str = "",
    description: str = "",
    policy: str = ListPolicy.OPEN,
    private: bool = False,
    moderators: str = "",
    owners: str = "",
) -> MailingList:
    """Create a list; ListError for a bad name, a taken name or an unknown policy; TooLong."""
    name = name.strip().lower()
    if not valid_list_name(name):
        raise ListError(
            f"{name!r} is not a valid list name: use up to {MAX_LIST_NAME} letters, "
            "digits, '.', '-' or '_' (no '+')"
        )
    if policy not in tuple(ListPolicy):
        raise ListError(f"unknown policy {policy!r}: choose one of {', '.join(ListPolicy)}")
    if get(session, name) is not None:
        raise ListError(f"a list named {name!r} already exists")
    mlist = MailingList(
        name=name,
        title=within(TITLE, title.strip()) or name,
        description=within(DESCRIPTION, description.strip()),
        policy=ListPolicy(policy),
        private=private,
        moderators=moderators,
        owners=owners.lower().replace(" ", ""),
    )
    session.add(mlist)
    session.flush()
    return mlist


def status_of(
    session: Session, mlist: MailingList, address: str, kind: str, thread_id: int = 0
) -> str | None:
    """The state of address's subscription of this kind (None: it never had one)."""
    try:
        sub = _existing(session, mlist, address, kind, thread_id)
    except subscriptions.SubscriptionError as exc:
        raise ListError(str(exc)) from None
    return sub.status if sub is not None else None


def _existing(
    session: Session, mlist: MailingList, address: str, kind: str, thread_id: int
) -> Subscription | None:
    """address's subscription row of this kind on mlist (SubscriptionError: no such thread)."""
    return subscriptions.find(
        session,
        mlist.id,
        subscriptions.normalize(address),
        kind,
        subscriptions.thread_key_for(session, mlist, kind, thread_id),
    )


def subscribe(
    session: Session,
    mlist: MailingList,
    address: str,
    kind: str = SubscriptionKind.LIST,
    thread_id: int = 0,
) -> Subscription:
    """An administrator's subscription: active at once (no confirmation mail, no approval).

    A request of the address waiting for a moderator is approved: it was promised a mail once
    it is in, and gets the welcome.
    """
    from listgate import approvals  # it builds on this module (ListError)

    try:
        waiting = _existing(session, mlist, address, kind, thread_id)
        if waiting is not None and waiting.status == SubscriptionState.AWAITING:
            approvals.approve(session, waiting, subscriptions.ADMIN)
            return waiting
        return subscriptions.start(
            session, mlist, address, kind, thread_id, approved_by=subscriptions.ADMIN
        )
    except subscriptions.SubscriptionError as exc:
        raise ListError(str(exc)) from None


def subscriptions_of(
    session: Session,
    mlist: MailingList,
    states: Collection[SubscriptionState],
    kinds: Collection[SubscriptionKind],
) -> list[Subscription]:
    """mlist's subscription rows in these states and of these kinds, by address."""
    return list(
        session.scalars(
            select(Subscription)
            .where(
                Subscription.list_id == mlist.id,
                Subscription.status.in_(list(states)),
                Subscription.kind.in_(list(kinds)),
            )
            .order_by(Subscription.address, Subscription.kind, Subscription.thread_key)
        )
    )
