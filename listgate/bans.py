"""Addresses a list's moderators banned from posting (set from the archive's moderation queue)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from listgate import store


def is_banned(session: Session, list_id: int, address: str) -> bool:
    """True when address may not post to the list."""
    if not address:
        return False
    # session.execute (not the bare connection) so that bans added in this session count.
    return (
        session.execute(
            store.BANNED, {"list_id": list_id, "address": address.strip().lower()}
        ).first()
        is not None
    )


def first_banned(session: Session, list_id: int, addresses: list[str]) -> str:
    """The first of addresses banned from posting to the list ('' if none): one look-up for all."""
    wanted = [a.strip().lower() for a in addresses if a]
    if not wanted:
        return ""
    found = set(
        session.execute(store.BANNED_AMONG, {"list_id": list_id, "addresses": wanted}).scalars()
    )
    return next((a for a in wanted if a in found), "")
