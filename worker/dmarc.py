"""Which authors need DMARC mode: their domain publishes p=reject or p=quarantine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from listgate.states import DmarcMode
from worker.resolver import Resolver

STRICT = ("reject", "quarantine")
TTL = 3600.0
MAX_DOMAINS = 4096


class TxtResolver(Protocol):
    """Returns the TXT strings at a name ([] when there are none)."""

    def __call__(self, name: str) -> list[str]: ...


def policy_of(records: list[str]) -> str:
    """The p= of the first DMARC record, lower-cased ('' when none)."""
    for record in records:
        tags = [t.strip() for t in record.split(";")]
        if not tags or tags[0].replace(" ", "").lower() != "v=dmarc1":
            continue
        for tag in tags[1:]:
            key, _, value = tag.partition("=")
            if key.strip().lower() == "p":
                return value.strip().lower()
    return ""


class DmarcPolicy:
    """Decides per author domain whether From must be rewritten; answers are cached."""

    def __init__(
        self,
        always: tuple[str, ...] = (),
        resolver: TxtResolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.always = {d.lower() for d in always}
        self.resolver = resolver or Resolver().txt
        self.clock = clock
        self._cache: dict[str, tuple[float, bool]] = {}

    def needs_rewrite(self, address: str, mode: str = DmarcMode.AUTO) -> bool:
        """True when mail From this address must go out From the list (mode: auto|always|never)."""
        if mode == DmarcMode.NEVER or "@" not in address:
            return False
        if mode == DmarcMode.ALWAYS:
            return True
        domain = address.rsplit("@", 1)[1].lower().rstrip(".")
        if domain in self.always or any(domain.endswith("." + d) for d in self.always):
            return True
        cached = self._cache.get(domain)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        strict = self._lookup(domain)
        if (
            len(self._cache) >= MAX_DOMAINS
        ):  # a small cache: start again rather than grow without end
            self._cache.clear()
        self._cache[domain] = (self.clock() + TTL, strict)
        return strict

    def _lookup(self, domain: str) -> bool:
        """The domain's own record, else its organisational parent's (a simple two-label guess)."""
        policy = policy_of(self.resolver(f"_dmarc.{domain}"))
        labels = domain.split(".")
        if not policy and len(labels) > 2:
            policy = policy_of(self.resolver(f"_dmarc.{'.'.join(labels[-2:])}"))
        return policy in STRICT
