"""Hand committed outbox entries to the broker by task name (never importing the worker)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from gateway.writer import drain
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
                # deferred: importing celery is slow and the gateway may never need it
                import celery

                app = celery.Celery(
                    "listgate-gateway", broker=self.settings.broker_url, set_as_current=False
                )
                # Fail fast when the broker is down: the post is committed and the sweeper resends.
                app.conf.broker_connection_timeout = 3
                app.conf.broker_connection_retry_on_startup = False
                app.conf.task_publish_retry_policy = {
                    "max_retries": 1,
                    "interval_start": 0.2,
                    "interval_step": 0.5,
                }
                self._app = app
            return self._app

    def __call__(self, entries: list[OutboxEntry]) -> int:
        """Send entries by task name; returns how many were sent."""
        try:
            sender = self.app()
        except Exception as exc:  # noqa: BLE001 - a bad broker URL must not fail a committed post
            log.warning(
                "broker unavailable, %d outbox entries left for the sweeper: %s", len(entries), exc
            )
            return 0
        try:
            with sender.producer_or_acquire() as producer:  # one connection for the whole batch
                return dispatch.enqueue(_Bound(sender, producer), entries)
        except Exception as exc:  # noqa: BLE001 - e.g. the pool could not connect
            log.warning(
                "broker unavailable, %d outbox entries left for the sweeper: %s", len(entries), exc
            )
            return 0


class _Bound:
    """send_task through one producer (a batch shares its connection)."""

    def __init__(self, app: Any, producer: Any) -> None:
        self.app = app
        self.producer = producer

    def send_task(self, name: str, args: Any = None, **kwargs: Any) -> Any:
        """Celery's send_task with our producer."""
        return self.app.send_task(name, args=args, producer=self.producer, **kwargs)


class BackgroundSender:
    """Hands committed entries to send() from one background thread, many at a time.

    The post's 250 no longer waits for the broker. Entries still queued when the process
    dies are not lost: they stay undone in the outbox and the worker's sweeper re-queues them.
    """

    def __init__(self, send: Callable[[list[OutboxEntry]], int], max_batch: int = 500) -> None:
        self.send = send
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[OutboxEntry | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, entries: list[OutboxEntry]) -> int:
        """Queue entries for sending; returns how many were queued."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=drain,
                    args=(self._queue, self.max_batch, self._send),
                    name="broker-send",
                    daemon=True,
                )
                self._thread.start()
        for entry in entries:
            self._queue.put(entry)
        return len(entries)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (for at most timeout seconds; the sweeper takes the rest), stop."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _send(self, batch: list[OutboxEntry]) -> None:
        try:
            self.send(batch)
        except Exception as exc:  # noqa: BLE001 - the thread must live on; the sweeper resends
            log.warning(
                "could not send %d outbox entries, left for the sweeper: %s", len(batch), exc
            )
