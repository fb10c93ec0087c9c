"""Who may learn that a private list exists: RCPT answers it like a missing one, except to these."""

from __future__ import annotations

import hmac
from datetime import datetime
from functools import partial

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from listgate import confirmations, moderation, tokens
from listgate.addresses import Recipient
from listgate.models import Delivery, DigestSent, MailingList, Message, Subscription
from listgate.numerals import hex_id
from listgate.states import SubscriptionState


def admits(
    conn: Connection, mlist: MailingList, sender: str | None, recipient: Recipient, secret: str
) -> bool:
    """True when RCPT may show this sender that mlist exists (always, for a list that is not
    private).

    A private list shows itself to its moderators and owners, to addresses it knows (any
    subscription that has not ended, pending ones included, so a confirmation reply gets
    through), and to mail
    carrying a code we made for it: a bounce to NAME+bounce-TOKEN@, a reply to NAME+confirm-CODE@,
    an answer to NAME+approve-CODE@ or NAME+reject-CODE@ (mailed to whoever moderates the list:
    its moderators, else its owners, else the site administrators).
    Core statements on conn (the gateway's look-up connection), no ORM session.
    """
    if not mlist.private:
        return True
    if recipient.command == "bounce":
        return _bounce_token_of(conn, mlist, recipient.arg, secret)
    if recipient.command == "confirm" and _confirm_code_of(conn, mlist, recipient.arg, secret):
        return True
    if recipient.command in (moderation.APPROVE, moderation.REJECT) and _moderation_code_of(
        conn, mlist, recipient, secret
    ):
        return True
    address = (sender or "").strip().strip("<>").strip().lower()
    if not address:
        return False
    if address in mlist.staff_addresses():
        return True
    known = select(Subscription.id).where(
        Subscription.list_id == mlist.id,
        Subscription.address == address,
        Subscription.status != SubscriptionState.ENDED,  # a former member is a stranger again
    )
    return conn.scalar(known.limit(1)) is not None


def _confirm_code_of(conn: Connection, mlist: MailingList, code: str, secret: str) -> bool:
    """True when code confirms a subscription to mlist (confirmations.by_confirm_code's test)."""
    sub_id = confirmations.confirm_code_id(code)
    if sub_id is None:
        return False
    row = conn.execute(
        select(
            Subscription.id, Subscription.list_id, Subscription.address, Subscription.created_at
        ).where(Subscription.id == sub_id)
    ).first()
    return row is not None and confirmations.code_confirms(
        secret, Subscription(**row._mapping), mlist.id, code
    )


def _moderation_code_of(
    conn: Connection, mlist: MailingList, recipient: Recipient, secret: str
) -> bool:
    """True when NAME+approve-CODE@ or NAME+reject-CODE@ names a post of mlist by a code we made
    (mailed to whoever moderates it: moderators, else owners, else site administrators)."""
    pk = hex_id(recipient.arg.partition(".")[0])
    if pk is None:
        return False
    row = conn.execute(
        select(Message.id, Message.list_id, Message.message_id).where(Message.id == pk)
    ).first()
    if row is None or row.list_id != mlist.id:
        return False
    made = moderation.code(secret, recipient.command, Message(id=row.id, message_id=row.message_id))
    return hmac.compare_digest(made, recipient.arg.lower())


def copy_made(db: Connection | Session, kind: str, ident: int) -> datetime | None:
    """When the deliveries or digests_sent row a VERP token (kind, ident) names was made, or None
    (no such row; a subscription's token, made before copies were named, carries no time)."""
    if not 0 < ident < 2**62:
        return None
    if kind == tokens.VERP_DELIVERY:
        return db.scalar(select(Delivery.created_at).where(Delivery.id == ident))
    if kind == tokens.VERP_DIGEST:
        return db.scalar(select(DigestSent.created_at).where(DigestSent.id == ident))
    return None


def _bounce_token_of(conn: Connection, mlist: MailingList, token: str, secret: str) -> bool:
    """True when a VERP token is ours and names a delivery, digest sent or subscription of mlist."""
    found = tokens.read_verp_token(secret, token, partial(copy_made, conn))
    if found is None or not 0 < found[1] < 2**62:
        return False
    kind, ident = found
    if kind == tokens.VERP_DELIVERY:
        query = (
            select(Message.list_id)
            .join(Delivery, Delivery.message_pk == Message.id)
            .where(Delivery.id == ident)
        )
    elif kind == tokens.VERP_DIGEST:
        query = select(DigestSent.list_id).where(DigestSent.id == ident)
    else:
        query = select(Subscription.list_id).where(Subscription.id == ident)
    return conn.scalar(query) == mlist.id
