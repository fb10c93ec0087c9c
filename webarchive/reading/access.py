"""Who may read what, and finding what a URL names.

Private lists are for their members and the people who run them (moderators, owners, site
administrators): outsiders get a 404.
"""

from __future__ import annotations

from flask import abort, g
from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import administration, lists
from listgate.models import MailingList, Message, Subscription, Thread
from listgate.policy import is_member
from listgate.states import PostState
from listgate.store import MEMBER
from listgate.threads import resolve
from webarchive.context import settings
from webarchive.security import current_address


def can_read(session: Session, mlist: MailingList) -> bool:
    """Public lists for everyone; private lists for signed-in members and those who run them."""
    if not mlist.private:
        return True
    address = current_address()
    return address is not None and reads_private(session, mlist, address)


def reads_private(session: Session, mlist: MailingList, address: str) -> bool:
    """Whether address reads mlist when it is private: a member, or one who may moderate it (a
    moderator, an owner, a site administrator: they act on its posts, subscribed or not)."""
    return administration.may_moderate(mlist, address, settings().admins) or is_member(
        session, mlist, address
    )


def readable_list(session: Session, name: str) -> MailingList:
    """The list called name if this visitor may read it, else 404 (existence does not leak)."""
    mlist = lists.get(session, name)
    if mlist is None or not can_read(session, mlist):
        abort(404)
    return mlist


def readable_list_ids(session: Session) -> set[int] | None:
    """Ids of private lists this visitor may read plus every public one; None means all lists."""
    cache = g.get("_readable_ids", False)
    if cache is not False:
        return cache
    rows = session.execute(select(MailingList.id, MailingList.private)).all()
    private = {pk for pk, is_private in rows if is_private}
    result: set[int] | None = None
    if private:
        result = {pk for pk, is_private in rows if not is_private} | _member_of(session, private)
    g._readable_ids = result
    return result


def _member_of(session: Session, list_ids: set[int]) -> set[int]:
    address = current_address()
    if address is None:
        return set()
    member = set(
        session.scalars(
            select(Subscription.list_id).where(
                Subscription.address == address,
                Subscription.list_id.in_(list_ids),
                *MEMBER,  # by address: not the index of (list, kind, status)
            )
        )
    )
    for mlist in session.scalars(select(MailingList).where(MailingList.id.in_(list_ids))):
        if administration.may_moderate(mlist, address, settings().admins):
            member.add(mlist.id)
    return member


def is_moderator(mlist: MailingList) -> bool:
    """Whether the signed-in person moderates this list (as moderator, owner or site admin)."""
    return administration.may_moderate(mlist, current_address(), settings().admins)


def readable_thread(session: Session, thread_id: int) -> Thread:
    """The thread (after merges) if it has visible posts and its list is readable; else 404."""
    thread = resolve(session, thread_id)
    if thread is None or thread.message_count <= 0 or not can_read(session, thread.mailing_list):
        abort(404)
    return thread


def readable_posts(
    session: Session, thread_id: int, newest: int | None = None
) -> tuple[Thread, list[Message]]:
    """The readable thread (readable_thread) and its visible posts.

    All of them oldest first, or with newest given only that many, newest first.
    """
    thread = readable_thread(session, thread_id)
    query = select(Message).where(
        Message.thread_id == thread.id, Message.status == PostState.VISIBLE
    )
    if newest is None:
        query = query.order_by(Message.date, Message.id)
    else:
        query = query.order_by(Message.date.desc(), Message.id.desc()).limit(newest)
    return thread, list(session.scalars(query))


def readable_message(session: Session, message_pk: int) -> Message:
    """A visible message the visitor may read, else 404."""
    msg = session.get(Message, message_pk)
    if msg is None or msg.status != PostState.VISIBLE:
        abort(404)
    thread = resolve(session, msg.thread_id)
    if thread is None or not can_read(session, thread.mailing_list):
        abort(404)
    return msg
