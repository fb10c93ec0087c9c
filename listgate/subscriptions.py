"""Subscriptions people ask for themselves (web or mail): double opt-in, tokens, follow/mute.

Shared by the worker (mail commands) and the web archive (forms, confirm/unsubscribe links).
Every function works inside the caller's transaction; generated mail is recorded in the
outbox (SEND_NOTICE) and must be enqueued by the caller after the commit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from listgate import dispatch, lists, threads, tokens
from listgate.models import MailingList, OutboxEntry, Person, Subscription, Thread
from listgate.models.people import ACTIVE, KINDS, PENDING

CONFIRM_DAYS = 7
RESEND_AFTER = timedelta(minutes=10)  # one confirmation mail per address and scope per 10 minutes


class SubscriptionError(ValueError):
    """A request that cannot be done; the message is fit to show the person."""


@dataclass(frozen=True)
class Outcome:
    """What a subscription action did, and the mail it queued (enqueue after commit)."""

    subscription: Subscription | None
    message: str
    outbox: list[OutboxEntry]
    list_name: str = ""
    thread_id: int = 0


def normalize(address: str) -> str:
    """A lower-cased bare address, or SubscriptionError."""
    address = address.strip().strip("<>").strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c in address for c in " \r\n<>,;\"\\"):
        raise SubscriptionError(f"{address!r} is not an email address")
    return address


def confirm_code(secret: str, sub: Subscription) -> str:
    """The code in NAME+confirm-CODE@ that confirms sub by reply (lower-case, VERP-safe)."""
    digest = hmac.new(secret.encode(), f"confirm:{sub.id}:{sub.address}:{int(sub.created_at.timestamp())}".encode(),
                      hashlib.sha256).digest()
    # 60 bits in 12 base32 characters: short enough for NAME+confirm-CODE@ to stay under 64.
    return f"{sub.id:x}." + base64.b32encode(digest).decode()[:12].lower()


def _find(session: Session, list_id: int, address: str, kind: str, thread_key: int) -> Subscription | None:
    return session.scalars(select(Subscription).where(
        Subscription.list_id == list_id, Subscription.address == address,
        Subscription.kind == kind, Subscription.thread_key == thread_key)).first()


def request(session: Session, mlist: MailingList, address: str, *, secret: str, base_url: str, domain: str,
            kind: str = "list", thread_id: int = 0) -> Outcome:
    """Ask to subscribe: a pending subscription and a confirmation mail to that very address."""
    address = normalize(address)
    if kind not in ("list", "digest", "thread"):
        raise SubscriptionError(f"cannot subscribe to {kind!r}: choose list, digest or thread")
    thread_key = _thread_key(session, mlist, kind, thread_id)
    sub = _find(session, mlist.id, address, kind, thread_key)
    if sub is not None and sub.status == ACTIVE:
        return Outcome(sub, "You are already subscribed.", [], mlist.name, thread_key)
    now = datetime.now(timezone.utc)
    if sub is not None and now - sub.created_at < RESEND_AFTER:
        # Forged requests must not turn us into a mail cannon aimed at someone's inbox.
        return Outcome(sub, f"A confirmation mail was sent to {address} a few minutes ago.", [], mlist.name, thread_key)
    if sub is None:
        sub = Subscription(list_id=mlist.id, address=address, kind=kind, thread_key=thread_key, status=PENDING)
        session.add(sub)
    sub.created_at = now  # a new request restarts the expiry clock
    session.flush()
    link = f"{base_url}/confirm/" + tokens.make(secret, tokens.CONFIRM, {"s": sub.id, "a": address})
    code = confirm_code(secret, sub)
    entry = dispatch.record(session, dispatch.SEND_NOTICE, sub.id, {
        "template": "confirm", "to": address, "list": mlist.name, "link": link,
        "reply_to": f"{mlist.name}+confirm-{code}@{domain}", "kind": kind, "thread_id": thread_key,
        "subject": _thread_subject(session, thread_key),
    })
    return Outcome(sub, f"A confirmation mail was sent to {address}.", [entry], mlist.name, thread_key)


def _thread_key(session: Session, mlist: MailingList, kind: str, thread_id: int) -> int:
    if kind not in ("thread", "mute"):
        return 0
    thread = threads.resolve(session, thread_id) if thread_id else None
    if thread is None or thread.list_id != mlist.id:
        raise SubscriptionError("there is no such thread on this list")
    return thread.id


def _thread_subject(session: Session, thread_key: int) -> str:
    thread = session.get(Thread, thread_key) if thread_key else None
    return thread.subject if thread is not None else ""


def _activate(session: Session, sub: Subscription) -> Outcome:
    """Make a pending subscription active and queue the welcome mail."""
    mlist = session.get_one(MailingList, sub.list_id)
    if sub.status == ACTIVE:
        return Outcome(sub, "Your subscription was already confirmed.", [], mlist.name, sub.thread_key)
    sub.status, sub.confirmed_at = ACTIVE, datetime.now(timezone.utc)
    if sub.kind in ("list", "digest"):  # one of the two: switching modes replaces the other
        other = "digest" if sub.kind == "list" else "list"
        session.execute(delete(Subscription).where(Subscription.list_id == sub.list_id,
                                                   Subscription.address == sub.address, Subscription.kind == other))
    else:
        _drop(session, sub.list_id, sub.address, "mute", sub.thread_key)
    entry = dispatch.record(session, dispatch.SEND_NOTICE, sub.id, {
        "template": "welcome", "to": sub.address, "list": mlist.name, "kind": sub.kind,
        "thread_id": sub.thread_key, "subject": _thread_subject(session, sub.thread_key)})
    return Outcome(sub, "Your subscription is confirmed.", [entry], mlist.name, sub.thread_key)


def read_confirm(secret: str, token: str) -> dict[str, Any]:
    """The data of a confirmation link, without acting; SubscriptionError when forged or expired."""
    try:
        data = tokens.read(secret, tokens.CONFIRM, token)
    except tokens.TokenError as exc:
        raise SubscriptionError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), int):
        raise SubscriptionError("this link is not valid")
    return data


def confirm_token(session: Session, secret: str, token: str) -> Outcome:
    """Confirm by the signed link; SubscriptionError when forged, expired or withdrawn."""
    data = read_confirm(secret, token)
    sub = session.get(Subscription, data["s"])
    if sub is None or sub.address != data.get("a"):
        raise SubscriptionError("this subscription request no longer exists; please ask again")
    return _activate(session, sub)


def by_confirm_code(session: Session, secret: str, mlist: MailingList, code: str) -> Subscription | None:
    """The subscription to mlist a NAME+confirm-CODE@ code was made for, or None (forged, altered, another list)."""
    sub_hex = code.partition(".")[0]
    try:
        sub_id = int(sub_hex, 16)
    except ValueError:
        return None
    sub = session.get(Subscription, sub_id) if 0 < sub_id < 2**62 else None  # a bigger id is no row: SQLite would overflow
    if sub is None or sub.list_id != mlist.id or not hmac.compare_digest(confirm_code(secret, sub), code.lower()):
        return None
    return sub


def confirm_by_code(session: Session, secret: str, mlist: MailingList, code: str) -> Outcome:
    """Confirm by replying to the confirmation mail (NAME+confirm-CODE@)."""
    sub = by_confirm_code(session, secret, mlist, code)
    if sub is None:
        raise SubscriptionError("this confirmation code is not valid")
    if sub.status != ACTIVE and datetime.now(timezone.utc) - sub.created_at > timedelta(days=CONFIRM_DAYS):
        raise SubscriptionError("this confirmation has expired; please subscribe again")
    return _activate(session, sub)


def unsubscribe_token(secret: str, list_id: int, address: str, thread_id: int = 0) -> str:
    """The signed per-recipient token of a List-Unsubscribe URL (thread_id: leave only that thread)."""
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
        return leave_thread(session, mlist, address, thread_id)
    return leave(session, mlist, address)


def leave(session: Session, mlist: MailingList, address: str, notify: bool = True) -> Outcome:
    """Remove every subscription of address on mlist; a goodbye mail when there was one."""
    address = normalize(address)
    removed = lists.unsubscribe(session, mlist, address)
    if not removed:
        return Outcome(None, f"{address} is not subscribed to {mlist.name}.", [], mlist.name)
    outbox = [dispatch.record(session, dispatch.SEND_NOTICE, 0, {
        "template": "goodbye", "to": address, "list": mlist.name})] if notify else []
    return Outcome(None, f"{address} has left {mlist.name}.", outbox, mlist.name)


def follow(session: Session, mlist: MailingList, address: str, thread_id: int) -> Outcome:
    """Follow a thread at once (for people the list already mails; others go through request())."""
    sub = _set_thread_choice(session, mlist, address, thread_id, "thread")
    return Outcome(sub, "You now follow this thread.", [], mlist.name, sub.thread_key)


def mute(session: Session, mlist: MailingList, address: str, thread_id: int) -> Outcome:
    """Stop getting one thread (a list subscriber keeps the rest of the list)."""
    sub = _set_thread_choice(session, mlist, address, thread_id, "mute")
    return Outcome(sub, "You will get no more mail from this thread.", [], mlist.name, sub.thread_key)


def _set_thread_choice(session: Session, mlist: MailingList, address: str, thread_id: int, kind: str) -> Subscription:
    """An active `kind` ("thread" or "mute") row for address on that thread; the opposite one goes."""
    address = normalize(address)
    key = _thread_key(session, mlist, kind, thread_id)
    _drop(session, mlist.id, address, "mute" if kind == "thread" else "thread", key)
    return lists.subscribe(session, mlist, address, kind, key)  # find or create, active at once


def leave_thread(session: Session, mlist: MailingList, address: str, thread_id: int) -> Outcome:
    """Unfollow a thread; a list subscriber mutes it instead, so it really stops."""
    address = normalize(address)
    key = _thread_key(session, mlist, "thread", thread_id)
    if has_active(session, mlist, address, ("list",)):
        return mute(session, mlist, address, key)
    _drop(session, mlist.id, address, "thread", key)
    return Outcome(None, "You no longer follow this thread.", [], mlist.name, key)


def _drop(session: Session, list_id: int, address: str, kind: str, thread_key: int) -> None:
    session.execute(delete(Subscription).where(
        Subscription.list_id == list_id, Subscription.address == address,
        Subscription.kind == kind, Subscription.thread_key == thread_key))


def has_active(session: Session, mlist: MailingList, address: str, kinds: tuple[str, ...] = KINDS) -> bool:
    """True when address has an active subscription of one of kinds on mlist."""
    return session.scalar(select(Subscription.id).where(
        Subscription.list_id == mlist.id, Subscription.address == address.lower(),
        Subscription.kind.in_(kinds), Subscription.status == ACTIVE).limit(1)) is not None


def person_settings(session: Session, address: str, *, auto_follow: bool | None = None,
                    copy_own_posts: bool | None = None, name: str | None = None) -> Person:
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
        person.name = name[:255]
    session.flush()
    return person


# --- Digest frequency (issue 13): `digest daily|weekly|off` by mail and on the web -----------

DIGEST_CHOICES = ("daily", "weekly", "off")


def set_digest(session: Session, mlist: MailingList, address: str, frequency: str, notify: bool = False) -> Outcome:
    """Switch an active list or digest subscription between every post ("off"), daily and weekly, in place."""
    address = normalize(address)
    if frequency not in DIGEST_CHOICES:
        raise SubscriptionError(f"digest {frequency!r}: choose daily, weekly or off")
    rows = session.scalars(select(Subscription).where(
        Subscription.list_id == mlist.id, Subscription.address == address, Subscription.kind.in_(("list", "digest")),
        Subscription.thread_key == 0).order_by(Subscription.id)).all()
    kind = "list" if frequency == "off" else "digest"
    active = [r for r in rows if r.status == ACTIVE]
    if not active:
        raise SubscriptionError(f"{address} is not subscribed to {mlist.name}; "
                                f"write to {mlist.name}+subscribe@ first")
    sub = next((r for r in active if r.kind == kind), active[0])
    if sub.kind != kind:
        for stale in rows:  # an unconfirmed request of the other kind would collide with the unique key
            if stale.kind == kind and stale is not sub:
                session.delete(stale)
        session.flush()
        sub.kind = kind
    if kind == "digest":
        sub.digest_frequency = frequency
    session.flush()
    said = "every post" if kind == "list" else f"a {frequency} digest"
    outbox = [dispatch.record(session, dispatch.SEND_NOTICE, sub.id, {
        "template": "digest_set", "to": address, "list": mlist.name, "said": said})] if notify else []
    return Outcome(sub, f"You now get {said} from {mlist.name}.", outbox, mlist.name)
