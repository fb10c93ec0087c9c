"""Rate limits on sign-in, votes, reports and web posts, counted in the database (shared by all workers)."""

from __future__ import annotations

import random
import time

from flask import abort, current_app, request
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from listgate.db import transaction
from listgate.models import RateHit
from webarchive.context import resources

# action -> (how many, per seconds); app.config["RATE_LIMITS"] may override entries.
DEFAULTS: dict[str, tuple[int, int]] = {
    "signin-address": (5, 900),
    "signin-ip": (30, 900),
    "vote": (120, 3600),
    "report": (20, 3600),
    "post": (20, 3600),
    "export": (120, 3600),  # raw mail and mbox downloads by anonymous clients
}


def client_ip() -> str:
    """The client's address as the server sees it (set ProxyFix in front of a proxy)."""
    return request.remote_addr or "unknown"


def limit(action: str, who: str) -> None:
    """Count one `action` by `who`; 429 with Retry-After when over the limit."""
    count, period = {**DEFAULTS, **current_app.config.get("RATE_LIMITS", {})}[action]
    now = int(time.time())
    window = now // period
    key = f"{action}:{who.lower()}"[:400]
    with transaction(resources().writer) as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(RateHit).values(key=key, window=window, count=1)
        session.execute(stmt.on_conflict_do_update(index_elements=[RateHit.key, RateHit.window],
                                                   set_={"count": RateHit.count + 1}))
        session.execute(delete(RateHit).where(RateHit.key == key, RateHit.window < window))
        if random.random() < 0.02:  # now and then, forget finished windows of everyone else too
            session.execute(delete(RateHit).where(RateHit.key.like(f"{action}:%"), RateHit.window < window))
        used = session.scalar(select(RateHit.count).where(RateHit.key == key, RateHit.window == window)) or 0
    if used > count:
        abort(429, description=f"Too many attempts. Please wait {period // 60} minutes and try again.",
              retry_after=(window + 1) * period - now)
