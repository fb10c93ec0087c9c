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
    """The first of addresses banned from posting to the list ('' if none).

    What the transaction read already (`learn`: a batch's addresses at once) is not read again.
    """
    wanted = posting_forms(addresses)
    known = store.tx(session).bans
    learn(session, list_id, [a for a in wanted if (list_id, a) not in known])
    return next((a for a in wanted if known[(list_id, a)]), "")


def learn(session: Session, list_id: int, addresses: list[str]) -> None:
    """Read which of addresses (posting forms) are banned from the list, in one query, and remember
    it for the rest of the transaction (a ban is added by a moderator's transaction of its own)."""
    wanted = list(dict.fromkeys(addresses))
    if wanted:
        found = banned_among(session, list_id, wanted)
        store.tx(session).bans.update({(list_id, a): a in found for a in wanted})


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
