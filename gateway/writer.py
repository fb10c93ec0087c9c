"""Group commit: one thread writes whatever messages are waiting, in one transaction.

Several executor threads each taking SQLite's write lock for one message spend their time
waiting on each other (BEGIN IMMEDIATE, busy_timeout); one writer that takes every pending
message at once shares one commit (and one fsync) between them, and answers each client only
after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")
WriteBatch = Callable[[list[J]], Sequence["R | BaseException"]]


T = TypeVar("T")
# Where a job's result goes: a thread's Future, or a coroutine's asyncio future on its loop.
Waiter = Future | tuple[asyncio.AbstractEventLoop, asyncio.Future]


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
        self._queue: queue.SimpleQueue[tuple[J, Waiter] | None] = queue.SimpleQueue()
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
        if not self._put(job, future):
            future.set_exception(WriterStopped("the gateway is stopping"))
        return future

    def submit_waiting(self, job: J) -> asyncio.Future[R]:
        """Queue job for the running event loop's coroutine: as submit, but the loop is woken once
        per batch for all of its futures (not once per job: each wake-up is a GIL hand-over)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._put(job, (loop, future)):
            future.set_exception(WriterStopped("the gateway is stopping"))
        return future

    def _put(self, job: J, waiter: Waiter) -> bool:
        with self._lock:
            if not self._running:
                return False
            self._queue.put((job, waiter))
        return True

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

    def _run(self, batch: list[tuple[J, Waiter]]) -> None:
        """Write one batch; a failure of the whole batch fails every job in it."""
        log.debug("writing %d waiting messages in one transaction", len(batch))
        try:
            results = self.write([job for job, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"write returned {len(results)} results for {len(batch)} jobs")
        except BaseException as exc:  # noqa: BLE001 - every client must get an answer
            results = [exc] * len(batch)
        on_loops: defaultdict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, object]]]
        on_loops = defaultdict(list)
        for (_, waiter), result in zip(batch, results, strict=True):  # lengths checked above
            if isinstance(waiter, Future):
                _settle(waiter, result)
            else:
                on_loops[waiter[0]].append((waiter[1], result))
        for loop, settled in on_loops.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                log.debug("answers for %d messages after the event loop closed", len(settled))


def _settle(future: Future | asyncio.Future, result: object) -> None:
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _settle_all(settled: list[tuple[asyncio.Future, object]]) -> None:
    """On the loop: resolve each future still awaited (a client that left cancelled its own)."""
    for future, result in settled:
        if not future.done():
            _settle(future, result)
