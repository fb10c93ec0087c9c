"""TXT look-ups for DMARC and DKIM through dnspython: one timeout, a small cache with TTLs."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.resolver

log = logging.getLogger(__name__)

MAX_TTL = 3600.0  # a record is kept at most this long, whatever its TTL
NEGATIVE_TTL = 300.0  # "no such record" and failures are kept this long
SIZE = 512  # names kept; the least recently used goes first


class Resolver:
    """Answers TXT queries; `server` ("HOST:PORT", or "" for the system's) is asked once per TTL."""

    def __init__(
        self,
        server: str = "",
        timeout: float = 5.0,
        size: int = SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server, self.timeout, self.size, self.clock = server, timeout, size, clock
        self._cache: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._resolver: dns.resolver.Resolver | None = None

    def txt(self, name: str) -> list[str]:
        """The TXT strings at name ([] on NXDOMAIN, no answer, timeout or any DNS failure)."""
        key = name.lower().rstrip(".")
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self.clock():
            self._cache.move_to_end(key)
            return hit[1]
        records, ttl = self._query(key)
        self._cache[key] = (self.clock() + ttl, records)
        self._cache.move_to_end(key)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return records

    def _query(self, name: str) -> tuple[list[str], float]:
        import dns.exception
        import dns.resolver

        try:
            answer = self._dns().resolve(name, "TXT", lifetime=self.timeout)
        except (dns.exception.DNSException, OSError) as exc:
            log.debug("no TXT record at %s: %s", name, exc)
            return [], NEGATIVE_TTL
        records = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
        return records, min(
            float(answer.rrset.ttl if answer.rrset is not None else MAX_TTL), MAX_TTL
        )

    def _dns(self) -> dns.resolver.Resolver:
        """A dnspython resolver for the configured server (built on first use)."""
        if self._resolver is None:
            import dns.resolver

            if self.server:
                host, _, port = self.server.rpartition(":")
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers, resolver.port = [host.strip("[]")], int(port)
            else:
                resolver = dns.resolver.Resolver()
            resolver.timeout = resolver.lifetime = self.timeout
            self._resolver = resolver
        return self._resolver

    def dkim(self, name: bytes, timeout: int = 5) -> bytes | None:
        """dkimpy's dnsfunc: the TXT record at name, as bytes, or None."""
        records = self.txt(name.decode("ascii", "replace"))
        return records[0].encode() if records else None
