"""Addresses a list's moderators banned from posting (set from the web archive's moderation queue)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate.models.web import Ban


def is_banned(session: Session, list_id: int, address: str) -> bool:
    """True when address may not post to the list."""
    if not address:
        return False
    return session.scalar(
        select(Ban.id).where(Ban.list_id == list_id, Ban.address == address.strip().lower()).limit(1)
    ) is not None
