"""Addresses a list's moderators banned from posting (set from the web archive's moderation queue)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from listgate.models.web import Ban

_QUERY: list[Any] = []  # the statement, built on first use (it runs for every post)


def is_banned(session: Session, list_id: int, address: str) -> bool:
    """True when address may not post to the list."""
    if not address:
        return False
    if not _QUERY:
        bans = Ban.__table__
        _QUERY.append(select(bans.c.id).where(bans.c.list_id == bindparam("list_id"),
                                              bans.c.address == bindparam("address")).limit(1))
    # session.execute (not the bare connection) so that bans added in this session count.
    return session.execute(_QUERY[0], {"list_id": list_id, "address": address.strip().lower()}).first() is not None
