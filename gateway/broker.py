"""Hand committed outbox entries to the broker by task name, from a background thread.

BrokerSender (listgate.sender) is the one way to build the client; the archiver's commits
reach it through BackgroundSender so no batch waits for the broker.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from gateway.writer import drain
from listgate.models import OutboxEntry
from listgate.sender import BrokerSender

__all__ = ["BackgroundSender", "BrokerSender"]

log = logging.getLogger(__name__)


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
