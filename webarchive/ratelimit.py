"""Rate limits on sign-in, votes, reports and web posts, counted in the database for all workers."""

from __future__ import annotations

from flask import abort, current_app, request

from listgate import ratelimits
from listgate.db import transaction
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
    with transaction(resources().writer) as session:
        used, retry_after = ratelimits.hit(session, f"{action}:{who}", period)
    if used > count:
        abort(
            429,
            description=f"Too many attempts. Please wait {period // 60} minutes and try again.",
            retry_after=retry_after,
        )
