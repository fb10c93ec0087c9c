"""Creating lists and administrators' subscriptions."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from listgate.addresses import MAX_LIST_NAME, valid_list_name
from listgate.models import MailingList, Subscription
from listgate.models.archive import POLICIES
from listgate.models.people import ACTIVE, KINDS


class ListError(ValueError):
    """A list operation that cannot be done; the message says why."""


def get(session: Session, name: str) -> MailingList | None:
    """The list called name, or None (list names are ASCII: a look-alike such as U+212A for k is no name)."""
    if not name.isascii():
        return None
    return session.scalars(select(MailingList).where(MailingList.name == name.lower())).first()


def require(session: Session, name: str) -> MailingList:
    """The list called name, or ListError."""
    mlist = get(session, name)
    if mlist is None:
        raise ListError(f"no list named {name!r}")
    return mlist


def create(session: Session, name: str, title: str = "", description: str = "", policy: str = "open",
           private: bool = False, moderators: str = "", owners: str = "") -> MailingList:
    """Create a list; ListError for a bad name, a taken name or an unknown policy."""
    name = name.strip().lower()
    if not valid_list_name(name):
        raise ListError(f"{name!r} is not a valid list name: use up to {MAX_LIST_NAME} letters, "
                        "digits, '.', '-' or '_' (no '+')")
    if policy not in POLICIES:
        raise ListError(f"unknown policy {policy!r}: choose one of {', '.join(POLICIES)}")
    if get(session, name) is not None:
        raise ListError(f"a list named {name!r} already exists")
    mlist = MailingList(name=name, title=title or name, description=description, policy=policy,
                        private=private, moderators=moderators, owners=owners.lower().replace(" ", ""))
    session.add(mlist)
    session.flush()
    return mlist


def subscribe(session: Session, mlist: MailingList, address: str, kind: str = "list", thread_id: int = 0) -> Subscription:
    """An administrator's subscription: active at once (no confirmation mail)."""
    address = address.strip().lower()
    if "@" not in address or any(c in address for c in " \r\n<>,;"):
        raise ListError(f"{address!r} is not an email address")
    if kind not in KINDS:
        raise ListError(f"unknown subscription kind {kind!r}: choose one of {', '.join(KINDS)}")
    sub = session.scalars(select(Subscription).where(
        Subscription.list_id == mlist.id, Subscription.address == address,
        Subscription.kind == kind, Subscription.thread_key == thread_id)).first()
    if sub is None:
        sub = Subscription(list_id=mlist.id, address=address, kind=kind, thread_key=thread_id)
        session.add(sub)
    sub.status, sub.confirmed_at = ACTIVE, datetime.now(timezone.utc)
    session.flush()
    return sub


def unsubscribe(session: Session, mlist: MailingList, address: str, thread_id: int | None = None) -> int:
    """Remove an address's subscriptions to a list (or to one thread); returns how many."""
    query = delete(Subscription).where(Subscription.list_id == mlist.id, Subscription.address == address.strip().lower())
    if thread_id is not None:
        query = query.where(Subscription.thread_key == thread_id)
    return session.execute(query).rowcount or 0
