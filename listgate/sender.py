"""The one way a process that is not the worker hands committed outbox entries to the broker.

The gateway's archiver, the web archive and the `listgate` command all send tasks by name
(listgate.dispatch) through a bare Celery client built here; none imports the worker. The
client fails fast when the broker is down: the work is committed in the outbox already, and the
worker's sweeper sends it once the broker is back. This is the core's only import of Celery
(pyproject.toml's import contract names it), and it is deferred: importing Celery is slow and
most commands never need it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from listgate import dispatch
from listgate.config import Settings
from listgate.models import OutboxEntry

log = logging.getLogger(__name__)


def celery_client(settings: Settings, name: str) -> Any:
    """A Celery app that only sends tasks by name to settings' broker, giving up quickly."""
    import celery

    app = celery.Celery(name, broker=settings.broker_url, set_as_current=False)
    # Fail fast when the broker is down: the entry is committed and the sweeper resends.
    app.conf.broker_connection_timeout = 3
    app.conf.broker_connection_retry_on_startup = False
    app.conf.task_publish_retry_policy = {
        "max_retries": 1,
        "interval_start": 0.2,
        "interval_step": 0.5,
    }
    return app


class BrokerSender:
    """Sends entries through one client made on first use; the outbox sweeper covers a failure."""

    def __init__(self, settings: Settings, name: str = "listgate-gateway") -> None:
        self.settings = settings
        self.name = name
        self._app: Any = None
        self._lock = threading.Lock()
        self.error: Exception | None = None  # why the last call could not send everything

    def app(self) -> Any:
        """The Celery client (made on first use)."""
        with self._lock:
            if self._app is None:
                self._app = celery_client(self.settings, self.name)
            return self._app

    def __call__(self, entries: list[OutboxEntry]) -> int:
        """Send entries by task name; returns how many were sent."""
        self.error = None
        if not entries:
            return 0
        try:
            sender = self.app()
        except Exception as exc:  # noqa: BLE001 - a bad broker URL must not fail committed work
            return self._failed(exc, len(entries))
        try:
            with sender.producer_or_acquire() as producer:  # one connection for the whole batch
                return dispatch.enqueue(_Bound(sender, producer), entries, on_error=self._note)
        except Exception as exc:  # noqa: BLE001 - e.g. the pool could not connect
            return self._failed(exc, len(entries))

    def _note(self, exc: Exception) -> None:
        self.error = exc

    def _failed(self, exc: Exception, count: int) -> int:
        self.error = exc
        log.warning("broker unavailable, %d outbox entries left for the sweeper: %s", count, exc)
        return 0


class _Bound:
    """send_task through one producer (a batch shares its connection)."""

    def __init__(self, app: Any, producer: Any) -> None:
        self.app = app
        self.producer = producer

    def send_task(self, name: str, args: Any = None, **kwargs: Any) -> Any:
        """Celery's send_task with our producer."""
        return self.app.send_task(name, args=args, producer=self.producer, **kwargs)
