"""Counting actions per key in fixed time windows, in the database (shared by every process)."""

from __future__ import annotations

import random
import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from listgate import store
from listgate.models import RateHit


def hit(session: Session, key: str, period: int) -> tuple[int, int]:
    """Count one event for key in the caller's transaction: (events in the window, seconds left)."""
    now = int(time.time())
    window = now // period
    key = key.lower()[:400]
    stmt = store.of(session).insert(RateHit).values(key=key, window=window, count=1)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[RateHit.key, RateHit.window], set_={"count": RateHit.count + 1}
        )
    )
    session.execute(delete(RateHit).where(RateHit.key == key, RateHit.window < window))
    if (
        random.random() < 0.02
    ):  # now and then, forget finished windows of every key of this kind too
        action = key.split(":", 1)[0]
        session.execute(
            delete(RateHit).where(RateHit.key.like(f"{action}:%"), RateHit.window < window)
        )
    used = (
        session.scalar(select(RateHit.count).where(RateHit.key == key, RateHit.window == window))
        or 0
    )
    return int(used), (window + 1) * period - now
