"""Who gets a post: list subscribers plus thread followers, minus mutes, those suspended on the
list by bounces, the author and To/Cc."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import threads
from listgate.models import Message, Person, Subscription, Thread
from listgate.states import SubscriptionKind, SubscriptionState

_THREAD_KINDS = (SubscriptionKind.THREAD, SubscriptionKind.MUTE)
_LIST_KINDS = (SubscriptionKind.LIST, SubscriptionKind.DIGEST)


def thread_keys(session: Session, thread_id: int) -> set[int]:
    """The thread's id, the thread it was merged into, and the threads merged into it."""
    keys = {thread_id}
    survivor = threads.resolve(session, thread_id)
    if survivor is not None:
        keys.add(survivor.id)
    keys.update(session.scalars(select(Thread.id).where(Thread.merged_into_id.in_(keys))))
    return keys


def recipients(session: Session, msg: Message, named: set[str]) -> dict[str, tuple[int, int]]:
    """{address: (subscription id, thread key or 0)} of everyone who should get msg, each once.

    `named`: the addresses the author already wrote to (To/Cc, see headers.addresses_in): they
    got it.
    """
    keys = thread_keys(session, msg.thread_id)
    subs = session.execute(
        select(
            Subscription.address,
            Subscription.id,
            Subscription.kind,
            Subscription.thread_key,
            Subscription.status,
        ).where(
            Subscription.list_id == msg.list_id,
            (
                (Subscription.status == SubscriptionState.ACTIVE)
                & (
                    ((Subscription.kind == SubscriptionKind.LIST) & (Subscription.thread_key == 0))
                    | (Subscription.kind.in_(_THREAD_KINDS) & Subscription.thread_key.in_(keys))
                )
            )
            | (
                (Subscription.status == SubscriptionState.SUSPENDED)
                & Subscription.kind.in_(_LIST_KINDS)
                & (Subscription.thread_key == 0)
            ),
        )
    ).all()
    # Muted, or suspended on the list by bounces: that mailbox is gone for the threads it
    # follows too, until the person comes back.
    left_out = {
        row.address.lower()
        for row in subs
        if row.kind == SubscriptionKind.MUTE or row.status == SubscriptionState.SUSPENDED
    }
    chosen: dict[str, tuple[int, int]] = {}
    # List subscriptions first: their unsubscribe link leaves the list, a follower's leaves the
    # thread.
    for written, sub_id, kind, key, _ in sorted(
        subs, key=lambda row: row.kind != SubscriptionKind.LIST
    ):
        addr = written.lower()
        if kind == SubscriptionKind.MUTE or addr in chosen or addr in left_out:
            continue
        chosen[addr] = (sub_id, key if kind == SubscriptionKind.THREAD else 0)
    author = (msg.from_addr or "").lower()
    if author in chosen:
        person = session.get(Person, author)
        if person is None or not person.copy_own_posts:
            del chosen[author]
    for addr in named:
        chosen.pop(addr, None)
    return chosen
