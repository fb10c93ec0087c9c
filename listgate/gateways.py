"""What each running gateway says of itself: connections open now, its limits, when it said so.

Counters count events; these are gauges, one set per gateway process, in the same table (the
one every process and replica reads: `listgate status`, /metrics) under names of their own and
the gateway's name (host/pid/address) as label. A gateway sets (not adds) its rows when its count
changes and every HEARTBEAT seconds; it removes them when it stops.

A gateway whose rows stay without it is trouble (`listgate status` exits 1; /metrics says
listgate_gateway_up 0): one not heard from for SILENT seconds died or hangs, and one on the host
that reads the rows whose process is gone is dead at once. Its rows stay, and so does the
trouble, until a gateway starts again on the same host and address (it replaces the one that
listened there before) or an operator says it is not coming back (`listgate gateways forget`):
a crash nobody answered is not made to look answered by the passing of time.
"""

from __future__ import annotations

import os
import socket
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
# its PID namespace (the inode of /proc/self/ns/pid; 0 unknown): a reader on the same host looks
# for its pid only in the same namespace (a container sharing the host's name has its own pids)
PID_NAMESPACE = "gateway-pid-namespace"
NAMES = (CONNECTIONS, LIMIT, NETWORK_SHARE, SEEN, PID_NAMESPACE)
HEARTBEAT = 15.0  # seconds between two reports of a gateway whose count did not change
SILENT = timedelta(seconds=4 * HEARTBEAT)  # not heard from for longer: died or hangs


@dataclass(frozen=True)
class GatewayReport:
    """One gateway's last report."""

    name: str  # host/pid/address
    connections: int
    limit: int
    network_share: int
    seen: datetime
    gone: bool = False  # it ran on the host that read the report, and its process is no more

    @property
    def pid(self) -> str:
        """Its process id, as its name says."""
        return _parts(self.name)[1]

    def silent(self, now: datetime) -> bool:
        """Not heard from for SILENT: it died or hangs, and its numbers are old."""
        return now - self.seen > SILENT

    def up(self, now: datetime) -> bool:
        """Heard from lately, and its process (when on this host) is still there."""
        return not self.gone and not self.silent(now)


def report(
    session: Session, name: str, connections: int, limit: int, share: int, now: datetime
) -> None:
    """Set the gateway's rows to these numbers (in the caller's transaction)."""
    forget(session, name)
    values = {CONNECTIONS: connections, LIMIT: limit, NETWORK_SHARE: share}
    values[SEEN] = int(now.timestamp())
    values[PID_NAMESPACE] = _pid_namespace()
    session.execute(
        insert(Counter),
        [{"name": key, "label": name, "value": value} for key, value in values.items()],
    )


def forget(session: Session, name: str) -> None:
    """Remove the gateway's rows (it stops, or reports anew)."""
    session.execute(delete(Counter).where(Counter.name.in_(NAMES), Counter.label == name))


def forget_replaced(session: Session, name: str) -> list[str]:
    """Remove the rows of earlier gateways on name's host and address (they died: name listens
    there now); their names.
    """
    host, pid, address = _parts(name)
    gone = [
        r.name for r in reports(session) if _parts(r.name)[::2] == (host, address) and r.pid != pid
    ]
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
            _gone(label, values.get(PID_NAMESPACE, 0)),
        )
        for label, values in sorted(found.items())
    ]


def _parts(name: str) -> tuple[str, str, str]:
    """(host, pid, address) of a gateway's name."""
    host, _, rest = name.partition("/")
    pid, _, address = rest.partition("/")
    return host, pid, address


def _pid_namespace() -> int:
    """This process's PID namespace (0 where the system does not say)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _gone(name: str, namespace: int) -> bool:
    """Whether the gateway named ran here (this host, these pids) and its process is no more."""
    host, pid, _ = _parts(name)
    if host != socket.gethostname() or not namespace or namespace != _pid_namespace():
        return False  # another host's or container's: only its silence tells
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # no signal sent: does the process exist?
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, another user's
        return False
    return False
