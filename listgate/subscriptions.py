"""Subscriptions: the one way to start, change or end them (the way in by a confirmed request,
double opt-in, is listgate/confirmations.py).

Shared by the worker (mail commands), the web archive (forms, links) and the CLI. Every
function works inside the caller's transaction; generated mail is recorded in the outbox
(SEND_NOTICE) and must be enqueued by the caller after the commit.

A subscription row is never deleted: deliveries and bounces point at it. `end` marks it
ended (when and why) and `start` makes the same row active again when the person comes
back, so the (post, address) ledger of deliveries keeps every copy exactly once across
leave, return and leave. `change` is what every channel calls to leave a list or a thread,
mute, unmute, follow or switch between every post and the daily or weekly digest.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import dispatch, limits, store, threads, tokens
from listgate.addresses import DIGEST_CHOICES, DIGEST_OFF
from listgate.models import MailingList, OutboxEntry, Person, Subscription, Thread
from listgate.policy import is_member, needs_approval
from listgate.states import DigestFrequency, SubscriptionKind, SubscriptionState
from listgate.store import lock_list

log = logging.getLogger(__name__)

# Channels: how a change was asked for. Kept in the end reason; answers on the mail channel are RFC
# 3834 replies.
LINK, MAIL, WEB, ADMIN = "link", "mail", "web", "admin"
# What change() can do.
LEAVE, LEAVE_THREAD, MUTE, UNMUTE, FOLLOW, EVERY_POST, DIGEST = (
    "leave",
    "leave-thread",
    "mute",
    "unmute",
    "follow",
    "list",
    "digest",
)
ACTIONS = (LEAVE, LEAVE_THREAD, MUTE, UNMUTE, FOLLOW, EVERY_POST, DIGEST)
KINDS = tuple(SubscriptionKind)
SWITCHED_TO_LIST = "switched to every post"  # a digest's end reason: its posts so far still come
_LIST_KINDS = (SubscriptionKind.LIST, SubscriptionKind.DIGEST)  # on the list, not a thread
REQUESTS = (SubscriptionState.PENDING, SubscriptionState.AWAITING)  # asked for, not in yet
NEEDS_APPROVAL = (
    SubscriptionKind.LIST,
    SubscriptionKind.DIGEST,
    SubscriptionKind.THREAD,
)  # ways in; a mute is a way out


class SubscriptionError(ValueError):
    """A request that cannot be done; the message is fit to show the person."""


@dataclass(frozen=True)
class Outcome:
    """What a subscription action did, and the mail it queued (enqueue after commit)."""

    subscription: Subscription | None
    message: str
    outbox: list[OutboxEntry] = field(default_factory=list)
    list_name: str = ""
    thread_id: int = 0


def normalize(address: str) -> str:
    """A lower-cased bare address, or SubscriptionError (control or separator characters too)."""
    address = address.strip().strip("<>").strip().lower()
    local, at, domain = address.rpartition("@")
    bad = any(c in ' <>,;"\\@' or unicodedata.category(c)[0] in "CZ" for c in local + domain)
    if not at or not local or "." not in domain or bad or len(local) > 64 or len(address) > 254:
        raise SubscriptionError(f"{address!r} is not an email address")
    return address


def _now() -> datetime:
    return datetime.now(UTC)


def find(
    session: Session, list_id: int, address: str, kind: str, thread_key: int
) -> Subscription | None:
    return session.scalars(
        select(Subscription).where(
            Subscription.list_id == list_id,
            Subscription.address == address,
            Subscription.kind == kind,
            Subscription.thread_key == thread_key,
        )
    ).first()


def _live(
    session: Session,
    list_id: int,
    address: str,
    kinds: Iterable[str],
    thread_key: int | None = None,
) -> list[Subscription]:
    """The rows of address on a list that have not ended, of these kinds (and this thread)."""
    query = select(Subscription).where(
        Subscription.list_id == list_id,
        Subscription.address == address,
        Subscription.kind.in_(tuple(kinds)),
        Subscription.status != SubscriptionState.ENDED,
    )
    if thread_key is not None:
        query = query.where(Subscription.thread_key == thread_key)
    return list(session.scalars(query.order_by(Subscription.id)))


def end(session: Session, subs: Iterable[Subscription], reason: str) -> int:
    """The one way a subscription ends: the row stays, with when and why; returns how many ended."""
    ended = 0
    for sub in subs:
        if sub.status != SubscriptionState.ENDED:
            sub.status, sub.ended_at, sub.end_reason = SubscriptionState.ENDED, _now(), reason[:64]
            ended += 1
    session.flush()
    return ended


def start(
    session: Session,
    mlist: MailingList,
    address: str,
    kind: str = SubscriptionKind.LIST,
    thread_id: int = 0,
    *,
    approved_by: str = "",
) -> Subscription:
    """The one way a subscription becomes active (its old row reused); where a moderator must let
    newcomers in, it waits (AWAITING) unless approved_by says who did."""
    address = normalize(address)
    if kind not in KINDS:
        raise SubscriptionError(
            f"unknown subscription kind {kind!r}: choose one of {', '.join(KINDS)}"
        )
    kind = SubscriptionKind(kind)
    key = thread_key_for(session, mlist, kind, thread_id)
    sub = find(session, mlist.id, address, kind, key)
    if sub is None:
        sub = Subscription(
            list_id=mlist.id,
            address=address,
            kind=kind,
            thread_key=key,
            status=SubscriptionState.PENDING,
            created_at=_now(),
            bounce_score=0.0,
            end_reason="",
            approved_by="",
        )
        session.add(sub)
    if sub.status == SubscriptionState.ENDED:
        # A moderator's approval lets in the request it was given for (in advance too), not a
        # return after the subscription ended: on a list that needs one, a former member asks again.
        sub.approved_by = ""
    approved_by = approved_by or sub.approved_by
    if sub.status == SubscriptionState.ACTIVE:
        _end_other_choice(session, sub)  # the latest choice wins, even over a request still pending
        return sub
    if (
        not approved_by
        and not _suspended_member(sub)
        and kind in NEEDS_APPROVAL
        and needs_approval(mlist)
        and not is_member(session, mlist, address)
    ):
        sub.status = SubscriptionState.AWAITING
        session.flush()
        _end_other_choice(session, sub, waiting_only=True)  # the latest request is the one asked
        return sub
    _make_active(session, sub, approved_by)
    return sub


def _suspended_member(sub: Subscription) -> bool:
    """A member stopped by bounces coming back (suspended, or asking again since: active once and
    never ended). Bounces stop the mail, not the membership, so no moderator is asked, even where
    the list needs one only since they joined."""
    return sub.status == SubscriptionState.SUSPENDED or (
        sub.status == SubscriptionState.PENDING
        and sub.confirmed_at is not None
        and sub.ended_at is None
    )


def _make_active(session: Session, sub: Subscription, approved_by: str) -> None:
    """Active from now, a fresh bounce score; the choice it replaces (digest/list, mute) ends."""
    sub.status, sub.confirmed_at, sub.ended_at, sub.end_reason = (
        SubscriptionState.ACTIVE,
        _now(),
        None,
        "",
    )
    sub.bounce_score, sub.approved_by = 0.0, approved_by
    session.flush()
    _end_other_choice(session, sub)


def _end_other_choice(session: Session, sub: Subscription, waiting_only: bool = False) -> None:
    """Every post or the digest, following or muting a thread: one of the two; the other ends
    (waiting_only: only a request of the other that waits, not one that is active)."""
    others: dict[SubscriptionKind, tuple[SubscriptionKind, str]] = {
        SubscriptionKind.LIST: (SubscriptionKind.DIGEST, SWITCHED_TO_LIST),
        SubscriptionKind.DIGEST: (SubscriptionKind.LIST, "switched to the digest"),
        SubscriptionKind.THREAD: (SubscriptionKind.MUTE, "followed again"),
        SubscriptionKind.MUTE: (SubscriptionKind.THREAD, "muted"),
    }
    other, reason = others[sub.kind]
    rows = _live(session, sub.list_id, sub.address, (other,), sub.thread_key)
    if waiting_only:
        rows = [r for r in rows if r.status in REQUESTS]
        reason = f"asked for {sub.kind} instead"
    end(session, rows, reason)


def thread_key_for(session: Session, mlist: MailingList, kind: str, thread_id: int) -> int:
    if kind not in (SubscriptionKind.THREAD, SubscriptionKind.MUTE):
        return 0
    thread = threads.resolve(session, thread_id) if thread_id else None
    if thread is None or thread.list_id != mlist.id:
        raise SubscriptionError(f"there is no thread {thread_id} on the list {mlist.name}")
    return thread.id


def thread_subject(session: Session, thread_key: int) -> str:
    """The subject of a thread (for mail about it), or ''."""
    thread = session.get(Thread, thread_key) if thread_key else None
    return thread.subject if thread is not None else ""


def notice(
    session: Session,
    mlist: MailingList,
    template: str,
    to: str,
    ref_id: int = 0,
    *,
    reply: bool = False,
    **fields: Any,
) -> OutboxEntry:
    """Record a generated mail; reply: it answers a mail, so RFC 3834's auto-reply rules apply."""
    payload = {"template": template, "to": to, "list": mlist.name, "list_id": mlist.id, **fields}
    if reply:
        payload["reply"] = True
    return dispatch.record(session, dispatch.SEND_NOTICE, ref_id, payload)


def change(
    session: Session,
    mlist: MailingList,
    address: str,
    action: str,
    *,
    channel: str,
    thread_id: int = 0,
    notify: bool = True,
    frequency: str = DigestFrequency.DAILY,
) -> Outcome:
    """Every way to change what an address gets from a list, from every channel (link, mail, web,
    CLI).

    Leaving the list ends every subscription of the address on it; leaving a thread a list
    subscriber still gets mutes it; DIGEST comes daily or weekly (frequency; "off" is every
    post). On the mail channel the person gets a short answer; leaving the list says goodbye
    (the mail that undoes a forged request).
    """
    address = normalize(address)
    if action not in ACTIONS:
        raise SubscriptionError(f"unknown action {action!r}: choose one of {', '.join(ACTIONS)}")
    lock_list(session, mlist)  # first: two changes at once (a double click) are made one by one
    if frequency not in DIGEST_CHOICES:
        raise SubscriptionError(f"digest {frequency!r}: choose {', '.join(DIGEST_CHOICES)}")
    if action == DIGEST and frequency == DIGEST_OFF:
        action = EVERY_POST
    key = (
        thread_key_for(session, mlist, SubscriptionKind.THREAD, thread_id)
        if action in (LEAVE_THREAD, MUTE, UNMUTE, FOLLOW)
        else 0
    )
    handler = (
        _mode(SubscriptionKind.DIGEST, DigestFrequency(frequency))
        if action == DIGEST
        else _HANDLERS[action]
    )
    sub, message, said = handler(session, mlist, address, key, channel)
    outbox = []
    if notify and said == "goodbye":
        # Never held back as a reply: it is how a forged unsubscribe is noticed, and at most one
        # goes out per subscription that really ended.
        outbox.append(notice(session, mlist, "goodbye", address))
    elif notify and said and channel == MAIL:
        outbox.append(
            notice(
                session,
                mlist,
                "changed",
                address,
                reply=True,
                message=message,
                thread_id=key,
                subject=thread_subject(session, key),
                action=action,
            )
        )
    log.info("%s %s on %s by %s: %s", address, action, mlist.name, channel, message)
    return Outcome(sub, message, outbox, mlist.name, key)


_Handler = Callable[[Session, MailingList, str, int, str], tuple[Subscription | None, str, str]]


def _leave(
    session: Session, mlist: MailingList, address: str, _key: int, channel: str
) -> tuple[Subscription | None, str, str]:
    rows = _live(session, mlist.id, address, KINDS)
    was_mailed = any(
        r.status in (SubscriptionState.ACTIVE, SubscriptionState.SUSPENDED) for r in rows
    )
    end(session, rows, f"left ({channel})")
    if not was_mailed:
        return None, f"{address} is not subscribed to {mlist.name}.", ""
    return None, f"{address} has left {mlist.name}.", "goodbye"


def _leave_thread(
    session: Session, mlist: MailingList, address: str, key: int, channel: str
) -> tuple[Subscription | None, str, str]:
    # A member (suspended by bounces too: still one, mailed again once back) mutes the thread.
    if any(
        r.status in (SubscriptionState.ACTIVE, SubscriptionState.SUSPENDED)
        for r in _live(session, mlist.id, address, (SubscriptionKind.LIST,))
    ):
        return _mute(session, mlist, address, key, channel)
    end(
        session,
        _live(session, mlist.id, address, (SubscriptionKind.THREAD,), key),
        f"left the thread ({channel})",
    )
    return None, "You no longer follow this thread.", "changed"


def _mute(
    session: Session, mlist: MailingList, address: str, key: int, _channel: str
) -> tuple[Subscription | None, str, str]:
    sub = start(session, mlist, address, SubscriptionKind.MUTE, key)
    return sub, "You will get no more mail from this thread.", "changed"


def _unmute(
    session: Session, mlist: MailingList, address: str, key: int, channel: str
) -> tuple[Subscription | None, str, str]:
    muted = _live(session, mlist.id, address, (SubscriptionKind.MUTE,), key)
    end(session, muted, f"unmuted ({channel})")
    return None, "This thread is no longer muted.", "changed"


def _follow(
    session: Session, mlist: MailingList, address: str, key: int, _channel: str
) -> tuple[Subscription | None, str, str]:
    sub = start(session, mlist, address, SubscriptionKind.THREAD, key)
    if sub.status == SubscriptionState.AWAITING:
        return (
            sub,
            f"A moderator of {mlist.name} must approve this first; you will get a mail.",
            "changed",
        )
    return sub, "You now follow this thread.", "changed"


def _mode(kind: SubscriptionKind, frequency: DigestFrequency = DigestFrequency.DAILY) -> _Handler:
    """Every post (kind LIST) or the digest at this frequency: a switch between the two rows."""

    def switch(
        session: Session, mlist: MailingList, address: str, _key: int, channel: str
    ) -> tuple[Subscription | None, str, str]:
        if channel == MAIL and not _live_active(session, mlist, address, _LIST_KINDS):
            # From can be forged: by mail this only switches a subscription the address already has.
            raise SubscriptionError(
                f"{address} is not subscribed to {mlist.name}; "
                f"write to {mlist.name}+subscribe@ first"
            )
        sub = start(session, mlist, address, kind)
        if kind == SubscriptionKind.DIGEST:
            sub.digest_frequency = frequency
            session.flush()
        if sub.status == SubscriptionState.AWAITING:
            return (
                sub,
                f"A moderator of {mlist.name} must approve your subscription; you will get a mail.",
                "changed",
            )
        what = "every post" if kind == SubscriptionKind.LIST else f"a {frequency} digest"
        return sub, f"You now get {what} from {mlist.name}.", "changed"

    return switch


_HANDLERS: dict[str, _Handler] = {
    LEAVE: _leave,
    LEAVE_THREAD: _leave_thread,
    MUTE: _mute,
    UNMUTE: _unmute,
    FOLLOW: _follow,
    EVERY_POST: _mode(SubscriptionKind.LIST),
    DIGEST: _mode(SubscriptionKind.DIGEST),
}


def _live_active(
    session: Session, mlist: MailingList, address: str, kinds: tuple[str, ...]
) -> bool:
    return any(
        r.status == SubscriptionState.ACTIVE for r in _live(session, mlist.id, address, kinds)
    )


def has_active(
    session: Session, mlist: MailingList, address: str, kinds: tuple[str, ...] = KINDS
) -> bool:
    """True when address has an active subscription of one of kinds on mlist."""
    return (
        session.scalar(
            select(Subscription.id)
            .where(
                Subscription.list_id == mlist.id,
                Subscription.address == address.lower(),
                Subscription.kind.in_(kinds),
                Subscription.status == SubscriptionState.ACTIVE,
            )
            .limit(1)
        )
        is not None
    )


# The way out by link: List-Unsubscribe (RFC 8058 one-click) and the link in welcome mails.


def unsubscribe_token(secret: str, list_id: int, address: str, thread_id: int = 0) -> str:
    """The signed per-recipient token of a List-Unsubscribe URL (thread_id: leave that thread)."""
    return tokens.make(secret, tokens.UNSUBSCRIBE, {"l": list_id, "a": address, "t": thread_id})


def read_unsubscribe(session: Session, secret: str, token: str) -> tuple[MailingList, str, int]:
    """(list, address, thread id) a token names, without acting; SubscriptionError if refused."""
    try:
        data, issued = tokens.read_issued(secret, tokens.UNSUBSCRIBE, token)
    except tokens.TokenError as exc:
        raise SubscriptionError(str(exc)) from None
    if not isinstance(data, dict):
        raise SubscriptionError("this link is not valid")
    mlist = session.get(MailingList, int(data.get("l", 0)))
    # A link made before the list was created is for a deleted list that had its id (SQLite gives
    # the id of the last row again): it must not take anyone off the list that has it now.
    if mlist is None or issued < mlist.created_at.replace(microsecond=0):
        raise SubscriptionError("the list this link was made for no longer exists")
    return mlist, str(data.get("a", "")), int(data.get("t", 0) or 0)


def unsubscribe_by_token(session: Session, secret: str, token: str) -> Outcome:
    """Act on an unsubscribe link: leave the thread it names, or the whole list."""
    mlist, address, thread_id = read_unsubscribe(session, secret, token)
    if thread_id:
        return change(session, mlist, address, LEAVE_THREAD, thread_id=thread_id, channel=LINK)
    return change(session, mlist, address, LEAVE, channel=LINK)


def person_settings(
    session: Session,
    address: str,
    *,
    auto_follow: bool | None = None,
    copy_own_posts: bool | None = None,
    name: str | None = None,
) -> Person:
    """Read or change an address's preferences (created on first use). The row is made by one
    statement that waits for another transaction making it at the same moment (a double click, two
    tabs), then read locked: the second change is made on the row the first made."""
    address = normalize(address)
    session.execute(
        store.of(session)
        .insert(Person)
        .values(address=address, auto_follow=True, copy_own_posts=False, name="")
        .on_conflict_do_nothing(index_elements=[Person.address])
    )
    person = session.get_one(Person, address, with_for_update=True, populate_existing=True)
    if auto_follow is not None:
        person.auto_follow = auto_follow
    if copy_own_posts is not None:
        person.copy_own_posts = copy_own_posts
    if name is not None:
        person.name = limits.within(limits.DISPLAY_NAME, name)
    session.flush()
    return person
