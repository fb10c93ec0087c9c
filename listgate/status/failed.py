"""Posts a relay refused as messages (not a recipient), for moderators and operators."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listgate.models import Bounce, Delivery, Message
from listgate.states import BounceKind

# how far back `status` and the moderation page list failed posts
FAILED_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class FailedPost:
    """A post a relay refused (the message itself, not a recipient): for moderators, operators."""

    message_pk: int
    list_id: int
    subject: str
    copies: int  # copies refused
    reason: str  # one relay's answer
    last: datetime


def failed_posts(
    session: Session,
    list_ids: Collection[int] | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> list[FailedPost]:
    """Posts with copies refused as messages in the last FAILED_WINDOW, newest first."""
    since = (now or datetime.now(UTC)) - FAILED_WINDOW
    last = func.max(Bounce.received_at)
    query = (
        select(
            Message.id,
            Message.list_id,
            Message.subject,
            func.count(Bounce.id),
            func.max(Bounce.diagnostic),
            last,
        )
        .join(Delivery, Delivery.id == Bounce.delivery_id)
        .join(Message, Message.id == Delivery.message_pk)
        .where(Bounce.kind == BounceKind.REFUSED, Bounce.received_at >= since)
        .group_by(Message.id, Message.list_id, Message.subject)
        .order_by(last.desc())
        .limit(limit)
    )
    if list_ids is not None:
        query = query.where(Message.list_id.in_(list_ids))
    return [
        FailedPost(pk, list_id, subject or "", int(n), reason or "", aware(when) or since)
        for pk, list_id, subject, n, reason, when in session.execute(query)
    ]


def aware(value: datetime | None) -> datetime | None:
    """value in UTC when the database gave it without a zone (SQLite)."""
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
