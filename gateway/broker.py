"""Hand committed outbox entries to the broker by task name (never importing the worker)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from listgate import dispatch
from listgate.config import Settings
from listgate.models import OutboxEntry

log = logging.getLogger(__name__)


class BrokerSender:
    """A bare Celery producer built on first use; the outbox sweeper covers any failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: Any = None
        self._lock = threading.Lock()

    def app(self) -> Any:
        """The Celery app used only to send tasks by name."""
        with self._lock:
            if self._app is None:
                import celery  # deferred: importing celery is slow and the gateway may never need it

                app = celery.Celery("listgate-gateway", broker=self.settings.broker_url, set_as_current=False)
                # Fail fast when the broker is down: the post is committed and the sweeper resends.
                app.conf.broker_connection_timeout = 3
                app.conf.broker_connection_retry_on_startup = False
                app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5}
                self._app = app
            return self._app

    def __call__(self, entries: list[OutboxEntry]) -> int:
        """Send entries by task name; returns how many were sent."""
        try:
            sender = self.app()
        except Exception as exc:  # noqa: BLE001 - a bad broker URL must not fail a committed post
            log.warning("broker unavailable, %d outbox entries left for the sweeper: %s", len(entries), exc)
            return 0
        return dispatch.enqueue(sender, entries)
