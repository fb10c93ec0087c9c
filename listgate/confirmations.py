"""Confirmations: the way in. A request mails a confirmation to the very address asked for;
its owner confirms by the signed link or by replying (NAME+confirm-CODE@), and the subscription
starts (or waits for a moderator where newcomers need one).

Each request restarts its row's created_at; its link and code carry that stamp, so only the
latest confirmation mailed confirms, and one used before the subscription ended does not bring
it back. Every function works inside the caller's transaction; the mail it records in the
outbox must be enqueued by the caller after the commit (see listgate/subscriptions.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import approvals, dispatch, ratelimits, tokens
from listgate.models import MailingList, OutboxEntry, Subscription
from listgate.numerals import hex_id
from listgate.states import SubscriptionKind, SubscriptionState
from listgate.store import lock_list
from listgate.subscriptions import (
    LINK,
    MAIL,
    NEEDS_APPROVAL,
    WEB,
    Outcome,
    SubscriptionError,
    find,
    normalize,
    notice,
    start,
    thread_key_for,
    thread_subject,
)

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


class RateLimited(SubscriptionError):
    """Too many confirmation mails to one address: nothing is sent (retry_after in seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _now() -> datetime:
    return datetime.now(UTC)


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
    if kind not in NEEDS_APPROVAL:
        raise SubscriptionError(f"cannot subscribe to {kind!r}: choose list, digest or thread")
    lock_list(session, mlist)  # first: two requests at once (a double click) are one
    if kind == SubscriptionKind.LIST and channel == MAIL:
        kind = _asked_by_mail(session, mlist, address)
    thread_key = thread_key_for(session, mlist, kind, thread_id)
    sub = find(session, mlist.id, address, kind, thread_key)
    said = _no_mail_needed(session, sub, address, mlist)
    if said and invited_by and sub is not None:
        return _invited(session, mlist, sub, invited_by, said)
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
    if sub.status == SubscriptionState.ENDED:
        sub.approved_by = ""  # the approval of a subscription that ended does not let it back in
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


def _asked_by_mail(session: Session, mlist: MailingList, address: str) -> SubscriptionKind:
    """What NAME+subscribe@ asks for: every post, but for a digest reader suspended by bounces
    (and not on every post since), who comes back to the digest as they had it; the suspension
    notice sends them there. The web asks which (the list page's buttons, Resume)."""
    digest = find(session, mlist.id, address, SubscriptionKind.DIGEST, 0)
    if digest is None or digest.status != SubscriptionState.SUSPENDED:
        return SubscriptionKind.LIST
    listed = find(session, mlist.id, address, SubscriptionKind.LIST, 0)
    if listed is not None and listed.status != SubscriptionState.ENDED:
        return SubscriptionKind.LIST
    return SubscriptionKind.DIGEST


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


def _invited(
    session: Session, mlist: MailingList, sub: Subscription, invited_by: str, said: str
) -> Outcome:
    """An invitation to an address that asked already: a request waiting for a moderator is
    approved now (the address is confirmed), one not confirmed yet is approved in advance."""
    if sub.status == SubscriptionState.AWAITING:
        return approvals.approve(session, sub, invited_by)
    if sub.status == SubscriptionState.PENDING:
        sub.approved_by = invited_by
        session.flush()
        said += f" It is approved in advance: {sub.address} is in as soon as they confirm."
    return Outcome(sub, said, [], mlist.name, sub.thread_key)


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
    lock_list(session, mlist)  # a link clicked twice at once: the second sees the first's change
    session.refresh(sub)
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
