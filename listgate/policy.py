"""A list's posting policy: who counts as a member, who needs a moderator, publishing a held post.

Apart from listgate/ingest.py, so that subscriptions, moderation, the web and the worker decide
these without importing the ingest path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from listgate import dispatch, store, threads
from listgate.models import MailingList, Message, OutboxEntry
from listgate.states import ListPolicy, PostState
from listgate.store import lock_list


def is_member(session: Session, mlist: MailingList, address: str) -> bool:
    """An active list or digest subscriber, or a moderator."""
    return address in members_among(session.connection(), mlist, [address])


def members_among(conn: Connection, mlist: MailingList, addresses: list[str]) -> set[str]:
    """Those of addresses that are members (is_member): moderators, then one query for the rest."""
    moderators = mlist.moderator_addresses()
    others = [a for a in addresses if a not in moderators]
    found = (
        set(conn.execute(store.MEMBERS_AMONG, {"list_id": mlist.id, "addresses": others}).scalars())
        if others
        else set()
    )
    return {a for a in addresses if a in moderators} | found


def needs_approval(mlist: MailingList) -> bool:
    """Private and members-only lists let nobody in without a moderator (or an administrator)."""
    return mlist.private or mlist.policy == ListPolicy.MEMBERS


def publish(session: Session, msg: Message) -> OutboxEntry:
    """Make a held message visible (a moderator approved it) and queue its fan-out."""
    mlist = session.get_one(MailingList, msg.list_id)
    lock_list(session, mlist)
    msg.status = PostState.VISIBLE
    thread = session.get_one(threads.Thread, msg.thread_id)
    threads.count_visible(session, thread, msg)
    publish_counts(mlist, msg)
    return dispatch.record(session, dispatch.FANOUT, msg.id)


def publish_counts(mlist: MailingList, msg: Any) -> None:
    """Count a newly visible post on its list (message count, last activity)."""
    mlist.message_count += 1
    if mlist.last_activity is None or msg.date > mlist.last_activity:
        mlist.last_activity = msg.date
