"""Operational state read from the database and the broker: `listgate status` and /metrics.

Everything is derived from rows (counters, deliveries, bounces, the outbox), so the numbers
are the same whichever process or replica asks. This module gathers the answer (collect());
its parts: metrics (the database's numbers), failed (posts a relay refused), broker (tasks
waiting), processes (the children of `listgate up`), state (the answer and what is wrong),
lines (the text of `listgate status`); each gateway's report is listgate.gateways.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text

from listgate.config import Settings
from listgate.db import make_engine, session_factory
from listgate.schema import current, head
from listgate.status.broker import BROKER_QUEUES, broker_queue_lengths
from listgate.status.failed import FAILED_WINDOW, FailedPost, failed_posts
from listgate.status.lines import render
from listgate.status.metrics import Metrics, gather_metrics
from listgate.status.state import Status
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
