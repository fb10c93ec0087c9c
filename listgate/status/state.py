"""The answer of `listgate status`: what each part said, and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from listgate import plurals
from listgate.gateways import GatewayReport
from listgate.states import DeliveryState
from listgate.status.metrics import RECENT_FAILURE_HOURS, Metrics
from listgate.status.processes import down as not_serving


@dataclass(frozen=True)
class Status:
    """The answer of `listgate status`."""

    database: str
    database_ok: bool
    revision: str | None = None
    head: str | None = None
    broker: str = ""
    broker_ok: bool = False
    broker_queue: dict[str, int] = field(default_factory=dict)
    metrics: Metrics | None = None
    processes: dict[str, Any] | None = None  # the children of a running `listgate up`, by name

    @property
    def deferring(self) -> int:
        """Copies waiting for the relay after it refused or could not be reached."""
        return self.metrics.deliveries.get(DeliveryState.DEFERRED, 0) if self.metrics else 0

    @property
    def processes_down(self) -> list[str]:
        """Children of `listgate up` not serving right now."""
        return not_serving(self.processes)

    @property
    def gateways_down(self) -> list[str]:
        """Gateways whose report stayed without them: process gone, or not heard from lately."""
        return [r.name for r in self._gateways_down()]

    def _gateways_down(self) -> list[GatewayReport]:
        if self.metrics is None:
            return []
        now = self.metrics.read_at or datetime.now(UTC)
        return [r for r in self.metrics.gateways if not r.up(now)]

    @property
    def problems(self) -> list[str]:
        """What is wrong, a few words each, in the order of the lines that say more; [] when ok."""
        found = []
        if not self.database_ok:
            found.append("the database is down")
        elif self.revision != self.head:
            found.append("the database's schema is behind the code")
        if not self.broker_ok:
            found.append("the broker is down")
        if self.metrics is not None and self.metrics.spool.failed:
            found.append(f"{plurals.count(self.metrics.spool.failed, 'mail')} failed to archive")
        found += [
            f"gateway {r.name} {'DEAD' if r.gone else 'SILENT'}" for r in self._gateways_down()
        ]
        if self.metrics is not None and self.metrics.outbox_failed_recent:
            failed = plurals.count(self.metrics.outbox_failed_recent, "outbox entry")
            found.append(f"{failed} failed for good in the last {RECENT_FAILURE_HOURS} h")
        if self.deferring:
            found.append(f"{plurals.count(self.deferring, 'copy')} deferred by the relay")
        found += [f"{name} of `listgate up` not serving" for name in self.processes_down]
        return found

    @property
    def ok(self) -> bool:
        """True when database and broker answer, the schema is current, no mail failed to
        archive, no outbox entry failed for good in the last day, no copy waits, all serve
        (every gateway that reports, the children of `up`).
        """
        return not self.problems
