"""What each running gateway says of itself: connections open now, its limits, when it said so.

Counters count events; these are gauges, one set per gateway process, in the same table (the
one every process and replica reads: `listgate status`, /metrics) under names of their own and
the gateway's name as label. A gateway sets (not adds) its rows when its count changes and every
HEARTBEAT seconds; it removes them when it stops. One not heard from for SILENT seconds died or
hangs: shown as silent, left out of the gauges; its rows go when a gateway starts a day later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from listgate.models import Counter

CONNECTIONS = "gateway-connections"  # open now
LIMIT = "gateway-connection-limit"  # LISTGATE_MAX_CONNECTIONS, as the gateway derived it
NETWORK_SHARE = "gateway-network-share"  # LISTGATE_MAX_CONNECTIONS_PER_NETWORK, likewise
SEEN = "gateway-seen"  # when it last said so (Unix time)
NAMES = (CONNECTIONS, LIMIT, NETWORK_SHARE, SEEN)
HEARTBEAT = 15.0  # seconds between two reports of a gateway whose count did not change
SILENT = timedelta(seconds=4 * HEARTBEAT)  # not heard from for longer: died or hangs
FORGOTTEN = timedelta(days=1)  # a silent gateway's rows are removed after this


@dataclass(frozen=True)
class GatewayReport:
    """One gateway's last report."""

    name: str  # host/pid/address
    connections: int
    limit: int
    network_share: int
    seen: datetime

    def silent(self, now: datetime) -> bool:
        """Not heard from for SILENT: it died or hangs, and its numbers are old."""
        return now - self.seen > SILENT


def report(
    session: Session, name: str, connections: int, limit: int, share: int, now: datetime
) -> None:
    """Set the gateway's rows to these numbers (in the caller's transaction)."""
    forget(session, name)
    values = {CONNECTIONS: connections, LIMIT: limit, NETWORK_SHARE: share}
    values[SEEN] = int(now.timestamp())
    session.execute(
        insert(Counter),
        [{"name": key, "label": name, "value": value} for key, value in values.items()],
    )


def forget(session: Session, name: str) -> None:
    """Remove the gateway's rows (it stops, or reports anew)."""
    session.execute(delete(Counter).where(Counter.name.in_(NAMES), Counter.label == name))


def forget_silent(session: Session, now: datetime) -> list[str]:
    """Remove the rows of gateways not heard from for FORGOTTEN; their names."""
    gone = [r.name for r in reports(session) if now - r.seen > FORGOTTEN]
    if gone:
        session.execute(delete(Counter).where(Counter.name.in_(NAMES), Counter.label.in_(gone)))
    return gone


def reports(session: Session) -> list[GatewayReport]:
    """Every gateway's last report, by name."""
    rows = session.execute(
        select(Counter.label, Counter.name, Counter.value).where(Counter.name.in_(NAMES))
    )
    return _reports(rows)


def _reports(rows: Iterable[tuple[str, str, int]]) -> list[GatewayReport]:
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for label, name, value in rows:
        found[label][name] = int(value)
    return [
        GatewayReport(
            label,
            values.get(CONNECTIONS, 0),
            values.get(LIMIT, 0),
            values.get(NETWORK_SHARE, 0),
            datetime.fromtimestamp(values.get(SEEN, 0), UTC),
        )
        for label, values in sorted(found.items())
    ]


def lines(found: list[GatewayReport], now: datetime) -> list[str]:
    """A `listgate status` line per gateway: its connections and limits, or that it is silent."""
    out = []
    for r in found:
        counts = (
            f"{r.connections} of {r.limit} connections open (a network's share {r.network_share})"
        )
        ago = max(0, int((now - r.seen).total_seconds()))
        if r.silent(now):
            out.append(
                f"gateway    SILENT {r.name}: not heard from since {r.seen:%Y-%m-%d %H:%M:%S} UTC "
                f"({ago} s ago: stopped without saying so, or hangs); it had {counts}"
            )
        else:
            out.append(f"gateway    ok     {r.name}: {counts}, said {ago} s ago")
    return out
