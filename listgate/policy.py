"""A list's posting policy: who counts as a member, who needs a moderator, publishing a held post.

Apart from listgate/ingest.py, so that subscriptions, moderation, the web and the worker decide
these without importing the ingest path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from listgate import dispatch, places, store, threads
from listgate.models import MailingList, Message, OutboxEntry
from listgate.states import ListPolicy, PostState, SubscriptionKind, SubscriptionState
from listgate.store import lock_list


def is_member(session: Session, mlist: MailingList, address: str) -> bool:
    """A list or digest subscriber, active or suspended by bounces, a moderator or an owner."""
    return address in members_among(session.connection(), mlist, [address])


def members_among(conn: Connection, mlist: MailingList, addresses: list[str]) -> set[str]:
    """Those of addresses that are members (is_member): moderators and owners, then one query for
    the rest."""
    staff = mlist.staff_addresses()
    others = [a for a in addresses if a not in staff]
    found = (
        set(conn.execute(store.MEMBERS_AMONG, {"list_id": mlist.id, "addresses": others}).scalars())
        if others
        else set()
    )
    return {a for a in addresses if a in staff} | found


def needs_approval(mlist: MailingList) -> bool:
    """Private and members-only lists let nobody in without a moderator (or an administrator)."""
    return mlist.private or mlist.policy == ListPolicy.MEMBERS


def publish(session: Session, msg: Message) -> OutboxEntry:
    """Make a held message visible (a moderator approved it) and queue its fan-out; its author
    follows its thread from now, as one posting a visible post does."""
    mlist = session.get_one(MailingList, msg.list_id)
    lock_list(session, mlist)
    msg.status = PostState.VISIBLE
    msg.published_at = datetime.now(UTC)  # today's digest has it, whenever it was received
    thread = session.get_one(threads.Thread, msg.thread_id)
    threads.count_visible(session, thread, msg)
    publish_counts(mlist, msg)
    auto_follow(session, mlist, msg.from_addr or "", thread.id)
    return dispatch.record(session, dispatch.FANOUT, msg.id)


def auto_follow(session: Session, mlist: MailingList, address: str, thread_id: int) -> None:
    """Posting in a thread follows it, unless the person turned that off, mutes it or already has a
    say in it.

    A follow the person ended earlier is taken up again (same row: its delivery history stays).
    On a list that needs a moderator's approval, only members are followed: posting is no way in.
    """
    if not address or (needs_approval(mlist) and not is_member(session, mlist, address)):
        return
    places.insert_rows(  # with the batch's other rows, when it defers them
        session.connection(),
        store.of(session).auto_follow,
        [
            {
                "list_id": mlist.id,
                "address": address,
                "kind": SubscriptionKind.THREAD,
                "thread_key": thread_id,
                "status": SubscriptionState.ACTIVE,
                "now": datetime.now(UTC),
            }
        ],
    )


def publish_counts(mlist: MailingList, msg: Any) -> None:
    """Count a newly visible post on its list (message count, last activity)."""
    mlist.message_count += 1
    if mlist.last_activity is None or msg.date > mlist.last_activity:
        mlist.last_activity = msg.date
