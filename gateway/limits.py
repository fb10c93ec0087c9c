"""Connection limits (the gateway's, each network's, each client's) and messages per minute per
client (message shapes: listgate.mail.shape)."""

from __future__ import annotations

import ipaddress
import logging
import resource
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from listgate.config import Settings

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
# By default one network may hold this fraction of the gateway's connections (1 / NETWORK_SHARE).
NETWORK_SHARE = 4
NETWORK_PREFIX = {4: 24, 6: 64}  # what counts as one network, by IP version


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


def client_limits(settings: Settings) -> ClientLimits:
    """The gateway's limits as configured (the connection limits derived where not set)."""
    total = connection_limit(settings.max_connections, settings.max_data_memory)
    per_client = settings.max_connections_per_client
    return ClientLimits(
        per_client,
        settings.max_messages_per_minute,
        max_total=total,
        max_per_network=network_limit(settings.max_connections_per_network, total, per_client),
    )


def network_limit(configured: int, total: int, per_client: int) -> int:
    """LISTGATE_MAX_CONNECTIONS_PER_NETWORK when set (not 0); else a quarter of the gateway's
    limit, and never less than one client may open (a network of one client is one client)."""
    return configured or max(total // NETWORK_SHARE, per_client, 1)


def network_of(client: str) -> str:
    """The network a client address counts in ('127.0.1.0/24', '2001:db8::/64'; an IPv4 address
    mapped into IPv6 as IPv4); a text that is no address stands for itself."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = NETWORK_PREFIX[address.version]
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


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
    but a trusted MTA's or a unix socket peer's ('' client); so does each network's share of it
    (max_per_network: one network cannot take every connection).
    """

    def __init__(
        self,
        max_connections: int,
        max_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        trusted: Iterable[str] = (),
        max_total: int = 1 << 20,
        max_per_network: int = 1 << 20,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_minute = max_per_minute
        self.max_total = max_total
        self.max_per_network = max_per_network
        self.total = 0  # connections open now, all clients together
        self._noted: dict[str, float] = {}  # when noted(what) last said yes
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, int] = defaultdict(int)
        self._networks: dict[str, int] = defaultdict(int)  # open connections by network_of()
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
        it is over: 'too-many-connections' (the gateway's), 'client-connections' (the client's)
        or 'network-connections' (its network's share)."""
        exempt = not client or self.trusted(client)
        network = "" if exempt else network_of(client)
        with self._lock:
            if not exempt:
                if self.total >= self.max_total:
                    return "too-many-connections"
                # .get: a refused client or network leaves no entry behind
                if self._open.get(client, 0) >= self.max_connections:
                    return "client-connections"
                if self._networks.get(network, 0) >= self.max_per_network:
                    return "network-connections"
                self._open[client] += 1
                self._networks[network] += 1
            self.total += 1
            return ""

    def noted(self, what: str) -> bool:
        """True at most once a minute for each what: when a refusal is worth a log line."""
        now = self._clock()
        with self._lock:
            if now - self._noted.get(what, -60.0) < 60:
                return False
            if len(self._noted) >= 10_000:  # bounded: a flood of networks must not grow it
                self._noted.clear()
            self._noted[what] = now
            return True

    def disconnect(self, client: str) -> None:
        """A connection from client that connect() let in closed."""
        exempt = not client or self.trusted(client)
        network = "" if exempt else network_of(client)
        with self._lock:
            self.total -= 1
            if exempt:
                return
            for counts, key in ((self._open, client), (self._networks, network)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]

    def refusal(self, over: str, client: str) -> str:
        """The 421 for a connection connect() refused (over: what it said)."""
        if over == "too-many-connections":
            return FULL
        if over == "network-connections":
            return (
                f"421 4.7.0 Too many connections from your network {network_of(client)} "
                f"(its share is {self.max_per_network} of the gateway's {self.max_total}), "
                "try again later"
            )
        return (
            f"421 4.7.0 Too many connections from {client} "
            f"(limit {self.max_connections}), try again later"
        )

    def networks(self, client: str) -> int:
        """Open connections from client's network now."""
        with self._lock:
            return self._networks.get(network_of(client), 0)

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
