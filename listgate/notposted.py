"""The "not posted" queue: mail answered 250 that did not become a post, kept with its reason.

Automatic replies (RFC 3834), mail loops and thread commands naming no known thread land
here instead of vanishing; moderators see them on the moderation page and in `listgate
status`, and can release one as a post (listgate.ingest.release).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from listgate import limits
from listgate.mail.message import ParsedMessage
from listgate.models import MailingList, NotPosted
from listgate.models.archive import utcnow


def keep(
    session: Session,
    mlist: MailingList,
    parsed: ParsedMessage,
    raw_id: int,
    reason: str,
    envelope_from: str | None,
) -> int:
    """Record an accepted mail that is not posted, in the caller's transaction; its queue id."""
    table = cast(Table, NotPosted.__table__)
    return int(
        session.connection()
        .execute(
            insert(table).returning(table.c.id),
            {
                "list_id": mlist.id,
                "raw_id": raw_id,
                "message_id": parsed.message_id[:998],
                "from_addr": (parsed.from_addr or "")[:320],
                "envelope_from": (envelope_from or "").strip("<>")[:320],
                "subject": parsed.subject[:2000],
                "reason": reason[:2000],
                "received_at": utcnow(),
                "released_by": "",
            },
        )
        .scalar_one()
    )


def waiting(
    session: Session, list_ids: Iterable[int] | None = None, limit: int = 200
) -> list[NotPosted]:
    """Entries not released yet (of these lists), oldest first."""
    query = select(NotPosted).where(NotPosted.released_at.is_(None))
    if list_ids is not None:
        query = query.where(NotPosted.list_id.in_(tuple(list_ids)))
    return list(session.scalars(query.order_by(NotPosted.id).limit(limit)))


def count_waiting(session: Session) -> int:
    """How many accepted mails wait in the queue."""
    return (
        session.scalar(
            select(func.count()).select_from(NotPosted).where(NotPosted.released_at.is_(None))
        )
        or 0
    )


def claim(session: Session, entry_id: int) -> NotPosted:
    """The entry to release, or LookupError saying why it cannot be.

    Locked until the caller's transaction ends (PostgreSQL; SQLite has one writer at a time): of
    two moderators releasing it at once, the second is told the first did.
    """
    entry = session.get(NotPosted, entry_id, with_for_update=True, populate_existing=True)
    if entry is None:
        raise LookupError(f"there is no entry {entry_id} in the not-posted queue")
    if entry.released_at is not None:
        raise LookupError(
            f"entry {entry_id} was already released by {entry.released_by or 'someone'}"
        )
    return entry


def mark_released(entry: NotPosted, by: str, message_pk: int | None) -> None:
    """Remember who released an entry and the post it became; TooLong for a longer by."""
    by = limits.within(limits.ACTOR, by)
    entry.released_at, entry.released_by, entry.message_pk = utcnow(), by, message_pk
