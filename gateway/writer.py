"""Group commit: one thread writes whatever messages are waiting, in one transaction.

Several executor threads each taking SQLite's write lock for one message spend their time
waiting on each other (BEGIN IMMEDIATE, busy_timeout); one writer that takes every pending
message at once shares one commit (and one fsync) between them, and answers each client only
after that commit.

With stages (`begin`, `finish`), a batch decided is not written at once when more messages are
waiting: the next batch's begin writes it with the next batch's own first step (the gateway: the
spool's append of one batch and the look-ups of the next in one database round trip), and its
clients are answered then; with nothing waiting, finish writes it alone.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")
B = TypeVar("B")
WriteBatch = Callable[[list[J]], Sequence["R | BaseException"]]
# begin(jobs, behind): behind's results (written now), and jobs begun; finish(begun): its results
Begin = Callable[[list[J], "B | None"], tuple[Sequence["R | BaseException"], B]]
Finish = Callable[[B], Sequence["R | BaseException"]]


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
    rest, stop = waiting_batch(waiting, max_batch - 1)
    return [first, *rest], stop


def waiting_batch(waiting: queue.SimpleQueue[T | None], max_batch: int) -> tuple[list[T], bool]:
    """What is waiting now (perhaps nothing), up to max_batch; the flag as in next_batch."""
    batch: list[T] = []
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
        stages: tuple[Begin[J, Any, R], Finish[Any, R]] | None = None,
    ) -> None:
        self.write = write
        self.stages = stages
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
                    target=drain if self.stages is None else self._staged,
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

    def _staged(
        self,
        waiting: queue.SimpleQueue[tuple[J, Waiter] | None],
        max_batch: int,
        _run: object,
    ) -> None:
        """The queue's one consumer with stages: each batch begun with the one behind it written,
        the last written alone when nothing else waits (see the module)."""
        assert self.stages is not None
        begin, finish = self.stages
        behind: tuple[list[Waiter], Any] | None = None
        while True:
            if behind is None:
                batch, stop = next_batch(waiting, max_batch)
            else:
                batch, stop = waiting_batch(waiting, max_batch)
            if batch:
                jobs, waiters = [job for job, _ in batch], [w for _, w in batch]
                try:
                    done, begun = begin(jobs, None if behind is None else behind[1])
                except BaseException as exc:  # noqa: BLE001 - every client must get an answer
                    # begin answers its own failures: raising, it vouches for nothing it wrote
                    if behind is not None:
                        self._answer(behind[0], exc)
                    self._answer(waiters, exc)
                    behind = None
                else:
                    if behind is not None:
                        self._answer(behind[0], done)
                    behind = (waiters, begun)
            if behind is not None and (stop or not batch):
                try:
                    last: Sequence[R | BaseException] | BaseException = finish(behind[1])
                except BaseException as exc:  # noqa: BLE001 - every client must get an answer
                    last = exc
                self._answer(behind[0], last)
                behind = None
            if stop:
                return

    def _run(self, batch: list[tuple[J, Waiter]]) -> None:
        """Write one batch; a failure of the whole batch fails every job in it."""
        log.debug("writing %d waiting messages in one transaction", len(batch))
        try:
            results: Sequence[R | BaseException] | BaseException = self.write(
                [job for job, _ in batch]
            )
        except BaseException as exc:  # noqa: BLE001 - every client must get an answer
            results = exc
        self._answer([waiter for _, waiter in batch], results)

    def _answer(
        self, waiters: list[Waiter], results: Sequence[R | BaseException] | BaseException
    ) -> None:
        """Settle each waiter with its result; with an error instead, or the wrong count of
        results, every waiter with the error."""
        if not isinstance(results, BaseException) and len(results) != len(waiters):
            results = RuntimeError(f"write returned {len(results)} results for {len(waiters)} jobs")
        if isinstance(results, BaseException):
            results = [results] * len(waiters)
        on_loops: defaultdict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, object]]]
        on_loops = defaultdict(list)
        for waiter, result in zip(waiters, results, strict=True):  # lengths checked above
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
