"""Group commit: one thread writes whatever messages are waiting, in one transaction.

Several executor threads each taking SQLite's write lock for one message spend their time
waiting on each other (BEGIN IMMEDIATE, busy_timeout); one writer that takes every pending
message at once shares one commit (and one fsync) between them, and answers each client only
after that commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")
WriteBatch = Callable[[list[J]], Sequence["R | BaseException"]]


T = TypeVar("T")


def next_batch(waiting: queue.SimpleQueue[T | None], max_batch: int) -> tuple[list[T], bool]:
    """Wait for one item, then take what else is waiting, up to max_batch.

    The flag is True once the stop mark (None) was taken: the caller handles the batch, then ends.
    """
    first = waiting.get()
    if first is None:
        return [], True
    batch = [first]
    while len(batch) < max_batch:
        try:
            item = waiting.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False


def drain(
    waiting: queue.SimpleQueue[T | None], max_batch: int, handle: Callable[[list[T]], None]
) -> None:
    """A queue's one consumer: hand each batch (next_batch) to handle until the stop mark."""
    while True:
        batch, stop = next_batch(waiting, max_batch)
        if batch:
            handle(batch)
        if stop:
            return


class WriterStopped(RuntimeError):
    """A message arrived while the writer is not running."""


class GroupWriter(Generic[J, R]):
    """Threads that call write(batch) on every job waiting, then resolve each job's future."""

    def __init__(
        self,
        write: WriteBatch[J, R],
        *,
        max_batch: int = 64,
        threads: int = 1,
        name: str = "writer",
    ) -> None:
        self.write = write
        self.max_batch = max_batch
        self.threads = threads
        self.name = name
        self._queue: queue.SimpleQueue[tuple[J, Future[R]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        """Start the writer threads (idempotent)."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._threads = [
                threading.Thread(
                    target=drain,
                    args=(self._queue, self.max_batch, self._run),
                    name=f"{self.name}-{i}",
                    daemon=True,
                )
                for i in range(self.threads)
            ]
            for t in self._threads:
                t.start()

    def submit(self, job: J) -> Future[R]:
        """Queue job; its future gets write()'s result for it, or the exception that failed it."""
        future: Future[R] = Future()
        with self._lock:
            if not self._running:
                future.set_exception(WriterStopped("the gateway is stopping"))
                return future
            self._queue.put((job, future))
        return future

    def stop(self, timeout: float | None = None) -> None:
        """Write what is queued, then stop the threads."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            for _ in self._threads:
                self._queue.put(None)
        for t in self._threads:
            t.join(timeout)

    def _run(self, batch: list[tuple[J, Future[R]]]) -> None:
        """Write one batch; a failure of the whole batch fails every job in it."""
        log.debug("writing %d waiting messages in one transaction", len(batch))
        try:
            results = self.write([job for job, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"write returned {len(results)} results for {len(batch)} jobs")
        except BaseException as exc:  # noqa: BLE001 - every client must get an answer
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):  # lengths checked above
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
