"""Per-client limits: connections and messages per minute (message shapes: listgate.mail.shape)."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

LOOPBACK = ("127.0.0.0/8", "::1/128")


def trusted_networks(configured: tuple[str, ...] | None, lmtp: bool) -> tuple[str, ...]:
    """LISTGATE_TRUSTED_MTAS if set; else loopback under LMTP (the MTA in front), none in SMTP."""
    if configured is not None:
        return configured
    return LOOPBACK if lmtp else ()


class ClientLimits:
    """Concurrent connections and messages per minute, per client address; trusted MTAs are exempt.

    Behind Postfix every LMTP connection comes from the MTA's one address: counting it like
    a stranger would throttle the whole list's traffic (Postfix opens up to 20 connections).
    """

    def __init__(
        self,
        max_connections: int,
        max_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        trusted: Iterable[str] = (),
    ) -> None:
        self.max_connections = max_connections
        self.max_per_minute = max_per_minute
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

    def connect(self, client: str) -> bool:
        """Count a new connection from client; False (and not counted) when over the limit."""
        if self.trusted(client):
            return True
        with self._lock:
            if self._open[client] >= self.max_connections:
                return False
            self._open[client] += 1
            return True

    def disconnect(self, client: str) -> None:
        """A connection from client closed."""
        if self.trusted(client):
            return
        with self._lock:
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
