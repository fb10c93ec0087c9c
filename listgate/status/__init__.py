"""Operational state read from the database and the broker: `listgate status` and /metrics.

Everything is derived from rows (counters, deliveries, bounces, the outbox), so the numbers
are the same whichever process or replica asks. This module gathers the answer (collect());
its parts: metrics (the database's numbers), failed (posts a relay refused), broker (tasks
waiting), processes (the children of `listgate up`), lines (the text of `listgate status`);
each gateway's report is listgate.gateways.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text

from listgate import plurals
from listgate.config import Settings
from listgate.db import make_engine, session_factory
from listgate.schema import current, head
from listgate.states import DeliveryState
from listgate.status.broker import BROKER_QUEUES, broker_queue_lengths
from listgate.status.failed import FAILED_WINDOW, FailedPost, failed_posts
from listgate.status.lines import render
from listgate.status.metrics import Metrics, gather_metrics
from listgate.status.processes import down as not_serving
from listgate.supervisor import read_state, state_file

__all__ = [
    "BROKER_QUEUES",
    "FAILED_WINDOW",
    "FailedPost",
    "Metrics",
    "Status",
    "broker_queue_lengths",
    "collect",
    "failed_posts",
    "gather_metrics",
    "redact",
    "render",
]


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
        if self.metrics is None:
            return []
        now = self.metrics.read_at or datetime.now(UTC)
        return [r.name for r in self.metrics.gateways if not r.up(now)]

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
        found += [f"gateway {name} is down" for name in self.gateways_down]
        if self.deferring:
            found.append(f"{plurals.count(self.deferring, 'copy')} deferred by the relay")
        found += [f"{name} of `listgate up` not serving" for name in self.processes_down]
        return found

    @property
    def ok(self) -> bool:
        """True when database and broker answer, the schema is current, no mail failed to
        archive, no copy waits, all serve (every gateway that reports, the children of `up`).
        """
        return not self.problems


def redact(url: str) -> str:
    """A URL without its password, fit for logs and screens."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def collect(settings: Settings) -> Status:
    """Check the database and the broker and read the metrics; never raises for a down service."""
    db_url, broker_url = redact(settings.database_url), redact(settings.broker_url)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, code_head = current(engine), head()
        metrics = None
        if revision is not None:
            with session_factory(engine)() as session:
                metrics = gather_metrics(session)
        db_state: dict[str, Any] = {
            "database_ok": True,
            "revision": revision,
            "head": code_head,
            "metrics": metrics,
        }
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        db_state = {"database_ok": False, "database": f"{db_url}: {_one_line(exc)}"}
    finally:
        engine.dispose()
    try:
        queue, broker_ok, broker = broker_queue_lengths(settings.broker_url), True, broker_url
    except Exception as exc:  # noqa: BLE001
        queue, broker_ok, broker = {}, False, f"{broker_url}: {_one_line(exc)}"
    return Status(
        **{"database": db_url, **db_state},
        broker=broker,
        broker_ok=broker_ok,
        broker_queue=queue,
        processes=(read_state(state_file(settings.data_dir)) or {}).get("children"),
    )


def _one_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0] if text_ else ''}"[:300]
