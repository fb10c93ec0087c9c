"""Connection limits (the gateway's, each client's) and messages per minute per client (message
shapes: listgate.mail.shape)."""

from __future__ import annotations

import ipaddress
import logging
import resource
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.0/8", "::1/128")
# What one connection may hold outside the DATA budget: asyncio reads up to 256 KiB at a time,
# the stream reader keeps up to 2 x 16 KiB, the reply buffer up to 64 KiB (a client that never
# reads its replies), and aiosmtpd's objects.
CONNECTION_COST = 384 * 1024
# File descriptors kept for the gateway's own use: its database connections, logs, the listening
# socket (about 30 with SQLite), and the sockets asyncio accepts in one go (up to the listen
# backlog, 100) before their connections are counted.
RESERVED_FDS = 192
# The default limit however small the memory budget (as many as Postfix's smtpd processes).
FEWEST_CONNECTIONS = 100
# Answer to a connection over the gateway's limit (a 4xx: the sender tries again later).
FULL = "421 4.7.0 Too many connections, try again later"


def connection_limit(configured: int, data_memory: int, files: int | None = None) -> int:
    """LISTGATE_MAX_CONNECTIONS when set (not 0); else what the fds and the memory budget allow.

    By default the connections may cost as much memory as the DATA budget (a connection
    CONNECTION_COST; a small budget still allows FEWEST_CONNECTIONS), and leave RESERVED_FDS of
    the process's file descriptors (`files`, by default its limit) free.
    """
    fds = (open_files() if files is None else files) - RESERVED_FDS
    if configured:
        if configured > fds:
            log.warning(
                "LISTGATE_MAX_CONNECTIONS=%d: more than the %d file descriptors left for "
                "connections (ulimit -n less %d); past them, connections wait unanswered",
                configured,
                max(fds, 0),
                RESERVED_FDS,
            )
        return configured
    return max(1, min(max(data_memory // CONNECTION_COST, FEWEST_CONNECTIONS), fds))


def open_files() -> int:
    """The process's limit of open file descriptors (its soft RLIMIT_NOFILE)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def trusted_networks(configured: tuple[str, ...] | None, lmtp: bool) -> tuple[str, ...]:
    """LISTGATE_TRUSTED_MTAS if set; else loopback under LMTP (the MTA in front), none in SMTP."""
    if configured is not None:
        return configured
    return LOOPBACK if lmtp else ()


class ClientLimits:
    """Concurrent connections and messages per minute, per client address; trusted MTAs are exempt.

    Behind Postfix every LMTP connection comes from the MTA's one address: counting it like
    a stranger would throttle the whole list's traffic (Postfix opens up to 20 connections).
    The gateway-wide limit of connections (max_total) counts every connection, and refuses any
    but a trusted MTA's or a unix socket peer's ('' client).
    """

    def __init__(
        self,
        max_connections: int,
        max_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        trusted: Iterable[str] = (),
        max_total: int = 1 << 20,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_minute = max_per_minute
        self.max_total = max_total
        self.total = 0  # connections open now, all clients together
        self._full_noted = -60.0  # when note_full last said yes
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self.trust(trusted)

    def trust(self, networks: Iterable[str]) -> None:
        """Exempt clients in these networks (addresses or CIDR) from every per-client limit."""
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._verdicts: dict[str, bool] = {}

    def trusted(self, client: str) -> bool:
        """True when client is in a trusted network."""
        verdict = self._verdicts.get(client)
        if verdict is None:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                address = None
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            verdict = address is not None and any(address in net for net in self._trusted)
            if len(self._verdicts) < 10_000:  # bounded: a flood of addresses must not grow it
                self._verdicts[client] = verdict
        return verdict

    def connect(self, client: str) -> str:
        """Count a new connection from client: '' when it may go on; else (not counted) the limit
        it is over: 'too-many-connections' (the gateway's) or 'client-connections' (client's)."""
        exempt = not client or self.trusted(client)
        with self._lock:
            if not exempt:
                if self.total >= self.max_total:
                    return "too-many-connections"
                if self._open[client] >= self.max_connections:
                    return "client-connections"
                self._open[client] += 1
            self.total += 1
            return ""

    def note_full(self) -> bool:
        """True at most once a minute: when a refusal over max_total is worth a log line."""
        now = self._clock()
        with self._lock:
            if now - self._full_noted < 60:
                return False
            self._full_noted = now
            return True

    def disconnect(self, client: str) -> None:
        """A connection from client that connect() let in closed."""
        exempt = not client or self.trusted(client)
        with self._lock:
            self.total -= 1
            if exempt:
                return
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def connections(self, client: str) -> int:
        """Open connections from client now."""
        with self._lock:
            return self._open.get(client, 0)

    def allow_message(self, client: str) -> bool:
        """Count a message from client; False (and not counted) over max_per_minute."""
        if self.trusted(client):
            return True
        now = self._clock()
        with self._lock:
            recent = self._recent[client]
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.max_per_minute:
                return False
            recent.append(now)
            return True
