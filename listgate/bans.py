"""Addresses a list's moderators banned from posting (set from the archive's moderation queue)."""

from __future__ import annotations

from sqlalchemy import Connection
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
    wanted = posting_forms(addresses)
    found = banned_among(session, list_id, wanted)
    return next((a for a in wanted if a in found), "")


def banned_among(bind: Session | Connection, list_id: int, addresses: list[str]) -> set[str]:
    """Those of addresses (as posting_forms gives them) banned from posting to the list: one query.

    Through a session, bans added in it count; a batch's few hundred addresses fit one IN list.
    """
    if not addresses:
        return set()
    return set(
        bind.execute(store.BANNED_AMONG, {"list_id": list_id, "addresses": addresses}).scalars()
    )


def posting_forms(addresses: list[str]) -> list[str]:
    """The addresses as bans name them (trimmed, lower case), empty ones left out."""
    return [a.strip().lower() for a in addresses if a]
