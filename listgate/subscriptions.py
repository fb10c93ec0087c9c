"""Subscriptions: the way in (double opt-in, approval) and the one way to change or end them.

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

import base64
import hashlib
import hmac
import json
import logging
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import dispatch, limits, ratelimits, threads, tokens
from listgate.addresses import DIGEST_CHOICES, DIGEST_OFF
from listgate.models import MailingList, OutboxEntry, Person, Subscription, Thread
from listgate.numerals import hex_id
from listgate.policy import is_member, needs_approval
from listgate.states import DigestFrequency, SubscriptionKind, SubscriptionState

log = logging.getLogger(__name__)

CONFIRM_DAYS = 7
# What an old confirmation says: it confirms only the request it was mailed for.
REPLACED = (
    "this confirmation was replaced by a newer one: use the latest confirmation mail sent to you"
)
USED = (
    "this confirmation has been used already, and the subscription has ended since; "
    "to subscribe again, please ask again"
)
WITHDRAWN = "this subscription request no longer exists; please ask again"
RESEND_AFTER = timedelta(minutes=10)  # one confirmation mail per address and scope per 10 minutes
CONFIRM_LIMIT = (
    5,
    900,
)  # and at most 5 per address per 15 minutes over every list, like sign-in links
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
_NEEDS_APPROVAL = (
    SubscriptionKind.LIST,
    SubscriptionKind.DIGEST,
    SubscriptionKind.THREAD,
)  # ways in; a mute is a way out


class SubscriptionError(ValueError):
    """A request that cannot be done; the message is fit to show the person."""


class RateLimited(SubscriptionError):
    """Too many confirmation mails to one address: nothing is sent (retry_after in seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


def _find(
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
    key = _thread_key(session, mlist, kind, thread_id)
    sub = _find(session, mlist.id, address, kind, key)
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
    approved_by = approved_by or sub.approved_by
    if sub.status == SubscriptionState.ACTIVE:
        _end_other_choice(session, sub)  # the latest choice wins, even over a request still pending
        return sub
    if (
        not approved_by
        and kind in _NEEDS_APPROVAL
        and needs_approval(mlist)
        and not is_member(session, mlist, address)
    ):
        sub.status = SubscriptionState.AWAITING
        session.flush()
        return sub
    _make_active(session, sub, approved_by)
    return sub


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


def _end_other_choice(session: Session, sub: Subscription) -> None:
    """Every post or the digest, following or muting a thread: one of the two; the other ends."""
    others: dict[SubscriptionKind, tuple[SubscriptionKind, str]] = {
        SubscriptionKind.LIST: (SubscriptionKind.DIGEST, SWITCHED_TO_LIST),
        SubscriptionKind.DIGEST: (SubscriptionKind.LIST, "switched to the digest"),
        SubscriptionKind.THREAD: (SubscriptionKind.MUTE, "followed again"),
        SubscriptionKind.MUTE: (SubscriptionKind.THREAD, "muted"),
    }
    other, reason = others[sub.kind]
    end(session, _live(session, sub.list_id, sub.address, (other,), sub.thread_key), reason)


def _thread_key(session: Session, mlist: MailingList, kind: str, thread_id: int) -> int:
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
    if frequency not in DIGEST_CHOICES:
        raise SubscriptionError(f"digest {frequency!r}: choose {', '.join(DIGEST_CHOICES)}")
    if action == DIGEST and frequency == DIGEST_OFF:
        action = EVERY_POST
    key = (
        _thread_key(session, mlist, SubscriptionKind.THREAD, thread_id)
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
    if _live_active(session, mlist, address, (SubscriptionKind.LIST,)):
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


# The way in: a request, confirmed by the address's owner (and approved by a moderator where
# needed).


def request_stamp(sub: Subscription) -> int:
    """Which request of sub is the current one: when it was made, in microseconds (each request
    starts the row's created_at again). Its confirmation link and code carry it."""
    return (sub.created_at - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def confirm_code(secret: str, sub: Subscription, stamp: int | None = None) -> str:
    """The code in NAME+confirm-CODE@ that confirms sub's current request by reply (lower-case,
    VERP-safe); stamp: a code made for another stamp of it (codes mailed before codes were made
    for the request's microsecond carried its second)."""
    stamp = request_stamp(sub) if stamp is None else stamp
    digest = hmac.new(
        secret.encode(), f"confirm:{sub.id}:{sub.address}:{stamp}".encode(), hashlib.sha256
    ).digest()
    # 60 bits in 12 base32 characters: short enough for NAME+confirm-CODE@ to stay under 64.
    return f"{sub.id:x}." + base64.b32encode(digest).decode()[:12].lower()


def request(
    session: Session,
    mlist: MailingList,
    address: str,
    *,
    secret: str,
    base_url: str,
    domain: str,
    kind: str = SubscriptionKind.LIST,
    thread_id: int = 0,
    channel: str = WEB,
    invited_by: str = "",
) -> Outcome:
    """Ask to subscribe: a pending subscription and a confirmation mail to that very address."""
    address = normalize(address)
    if kind not in _NEEDS_APPROVAL:
        raise SubscriptionError(f"cannot subscribe to {kind!r}: choose list, digest or thread")
    thread_key = _thread_key(session, mlist, kind, thread_id)
    sub = _find(session, mlist.id, address, kind, thread_key)
    said = _no_mail_needed(session, sub, address, mlist)
    if said:
        return Outcome(sub, said, [], mlist.name, thread_key)
    used, retry_after = ratelimits.hit(session, f"confirm-address:{address}", CONFIRM_LIMIT[1])
    if used > CONFIRM_LIMIT[0]:
        raise RateLimited(
            f"Too many confirmation mails were sent to {address}. Please wait "
            f"{CONFIRM_LIMIT[1] // 60} minutes and try again.",
            retry_after,
        )
    if sub is None:
        sub = Subscription(
            list_id=mlist.id,
            address=address,
            kind=kind,
            thread_key=thread_key,
            bounce_score=0.0,
            end_reason="",
            approved_by="",
        )
        session.add(sub)
    sub.status, sub.created_at = (
        SubscriptionState.PENDING,
        _now(),
    )  # a new request restarts the expiry clock
    if invited_by:
        sub.approved_by = invited_by
    session.flush()
    link = f"{base_url}/confirm/" + tokens.make(
        secret, tokens.CONFIRM, {"s": sub.id, "a": address, "r": request_stamp(sub)}
    )
    entry = notice(
        session,
        mlist,
        "confirm",
        address,
        sub.id,
        reply=channel == MAIL,
        link=link,
        kind=kind,
        thread_id=thread_key,
        reply_to=f"{mlist.name}+confirm-{confirm_code(secret, sub)}@{domain}",
        subject=thread_subject(session, thread_key),
        invited=bool(invited_by),
    )
    return Outcome(
        sub, f"A confirmation mail was sent to {address}.", [entry], mlist.name, thread_key
    )


def _no_mail_needed(
    session: Session, sub: Subscription | None, address: str, mlist: MailingList
) -> str:
    """What to say instead of sending a confirmation mail ('' when one should go)."""
    if sub is None:
        return ""
    if sub.status == SubscriptionState.ACTIVE:
        return "You are already subscribed."
    if sub.status == SubscriptionState.AWAITING:
        return f"Your subscription waits for the approval of a moderator of {mlist.name}."
    if (
        sub.status == SubscriptionState.PENDING
        and _now() - sub.created_at < RESEND_AFTER
        and not _confirmation_refused(session, sub)
    ):
        # Forged requests must not turn us into a mail cannon aimed at someone's inbox.
        return f"A confirmation mail was sent to {address} a few minutes ago."
    return ""


def _confirmation_refused(session: Session, sub: Subscription) -> bool:
    """True when the relay refused the last confirmation mail of sub: it never arrived, so
    asking again (the mailbox fixed) must not wait RESEND_AFTER for a mail that will not come."""
    last = session.scalars(
        select(OutboxEntry)
        .where(OutboxEntry.kind == dispatch.SEND_NOTICE, OutboxEntry.ref_id == sub.id)
        .order_by(OutboxEntry.id.desc())
        .limit(1)
    ).first()
    if last is None or last.failed_at is None:
        return False
    payload = json.loads(last.payload or "{}")
    return isinstance(payload, dict) and payload.get("template") == "confirm"


def read_confirm(secret: str, token: str) -> dict[str, Any]:
    """The data of a confirmation link, without acting; SubscriptionError when forged or expired."""
    try:
        data = tokens.read(secret, tokens.CONFIRM, token)
    except tokens.TokenError as exc:
        raise SubscriptionError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), int):
        raise SubscriptionError("this link is not valid")
    return data


def confirming(session: Session, secret: str, token: str) -> Subscription:
    """The subscription a confirmation link would confirm, without acting; SubscriptionError
    when forged, expired, withdrawn, replaced by a newer request or used (and ended since)."""
    data = read_confirm(secret, token)
    sub = session.get(Subscription, data["s"])
    if sub is None or sub.address != data.get("a"):
        raise SubscriptionError(WITHDRAWN)
    # A link mailed before links named their request ("r") is taken for the current one.
    if data.get("r", request_stamp(sub)) != request_stamp(sub):
        raise SubscriptionError(REPLACED)
    _still_asked(sub)
    return sub


def confirm_token(session: Session, secret: str, token: str) -> Outcome:
    """Confirm by the signed link the request it was mailed for (see confirming)."""
    return _confirmed(session, confirming(session, secret, token), LINK)


def by_confirm_code(
    session: Session, secret: str, mlist: MailingList, code: str
) -> Subscription | None:
    """The subscription a NAME+confirm-CODE@ code was made for, or None (forged, or elsewhere)."""
    sub_id = confirm_code_id(code)
    sub = session.get(Subscription, sub_id) if sub_id is not None else None
    if sub is None or not code_confirms(secret, sub, mlist.id, code):
        return None
    return sub


def confirm_code_id(code: str) -> int | None:
    """The subscription id a NAME+confirm-CODE@ code names, or None (no id a row can have)."""
    return hex_id(code.partition(".")[0])


def code_confirms(secret: str, sub: Subscription, list_id: int, code: str) -> bool:
    """True when code is the confirmation code made for sub's current request, a subscription to
    list list_id (or a code of it mailed before codes named its microsecond)."""
    stamps = (request_stamp(sub), int(sub.created_at.timestamp()))
    return sub.list_id == list_id and any(
        hmac.compare_digest(confirm_code(secret, sub, stamp), code.lower()) for stamp in stamps
    )


def confirm_by_code(session: Session, secret: str, mlist: MailingList, code: str) -> Outcome:
    """Confirm by replying to the confirmation mail (NAME+confirm-CODE@)."""
    sub = by_confirm_code(session, secret, mlist, code)
    if sub is None:
        # A code made for an earlier request of the row, or forged: only the latest one works.
        raise SubscriptionError(f"{REPLACED} (or this confirmation code is not valid)")
    if sub.status == SubscriptionState.PENDING and _now() - sub.created_at > timedelta(
        days=CONFIRM_DAYS
    ):
        raise SubscriptionError("this confirmation has expired; please subscribe again")
    return _confirmed(session, sub, MAIL)


def _still_asked(sub: Subscription) -> None:
    """SubscriptionError when sub's request ended or was suspended since its confirmation was
    mailed: an old link or code must not bring it back (USED when it was confirmed first)."""
    if sub.status in (SubscriptionState.ENDED, SubscriptionState.SUSPENDED):
        used = sub.confirmed_at is not None and sub.confirmed_at >= sub.created_at
        raise SubscriptionError(USED if used else WITHDRAWN)


def _confirmed(session: Session, sub: Subscription, channel: str) -> Outcome:
    """The owner of the address answered: active (welcome mail), or waiting for a moderator."""
    mlist = session.get_one(MailingList, sub.list_id)
    if sub.status in (SubscriptionState.ACTIVE, SubscriptionState.AWAITING):
        said = (
            "Your subscription was already confirmed."
            if sub.status == SubscriptionState.ACTIVE
            else f"Your address is confirmed; a moderator of {mlist.name} still has to approve "
            "your subscription."
        )
        # Used again: nothing changes; a reply by mail is answered like the page a link opens.
        answer = (
            [notice(session, mlist, "changed", sub.address, sub.id, reply=True, message=said)]
            if channel == MAIL
            else []
        )
        return Outcome(sub, said, answer, mlist.name, sub.thread_key)
    _still_asked(sub)
    started = start(session, mlist, sub.address, sub.kind, sub.thread_key)  # the same row
    # The code or link proves the address is the sender's own: the answer is not limited as a reply.
    fields = {
        "kind": sub.kind,
        "thread_id": sub.thread_key,
        "subject": thread_subject(session, sub.thread_key),
        "authenticated": True,
    }
    if started.status == SubscriptionState.AWAITING:
        entry = notice(
            session, mlist, "awaiting", sub.address, sub.id, reply=channel == MAIL, **fields
        )
        return Outcome(
            sub,
            f"Your address is confirmed. A moderator of {mlist.name} must approve your "
            "subscription; you will get a mail when they have.",
            [entry],
            mlist.name,
            sub.thread_key,
        )
    entry = notice(session, mlist, "welcome", sub.address, sub.id, reply=channel == MAIL, **fields)
    return Outcome(sub, "Your subscription is confirmed.", [entry], mlist.name, sub.thread_key)


# The way out by link: List-Unsubscribe (RFC 8058 one-click) and the link in welcome mails.


def unsubscribe_token(secret: str, list_id: int, address: str, thread_id: int = 0) -> str:
    """The signed per-recipient token of a List-Unsubscribe URL (thread_id: leave that thread)."""
    return tokens.make(secret, tokens.UNSUBSCRIBE, {"l": list_id, "a": address, "t": thread_id})


def read_unsubscribe(session: Session, secret: str, token: str) -> tuple[MailingList, str, int]:
    """(list, address, thread id) a token names, without acting; SubscriptionError if refused."""
    try:
        data: Any = tokens.read(secret, tokens.UNSUBSCRIBE, token)
    except tokens.TokenError as exc:
        raise SubscriptionError(str(exc)) from None
    if not isinstance(data, dict):
        raise SubscriptionError("this link is not valid")
    mlist = session.get(MailingList, int(data.get("l", 0)))
    if mlist is None:
        raise SubscriptionError("this list no longer exists")
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
    """Read or change an address's preferences (created on first use)."""
    address = normalize(address)
    person = session.get(Person, address)
    if person is None:
        person = Person(address=address, auto_follow=True, copy_own_posts=False, name="")
        session.add(person)
    if auto_follow is not None:
        person.auto_follow = auto_follow
    if copy_own_posts is not None:
        person.copy_own_posts = copy_own_posts
    if name is not None:
        person.name = limits.within(limits.DISPLAY_NAME, name)
    session.flush()
    return person
