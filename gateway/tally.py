"""Counts added up on the event loop and written as one job at a time.

A refusal aiosmtpd answers from its own code (a SIZE over the limit, a line too long, the DATA
memory budget) is counted without the client waiting for the count. With a task and a writer job
of its own per refusal, a client repeating a refused command as fast as it can would queue them
faster than the writer commits (memory without bound, and work added to the commit that posts
wait for). Here a refusal adds one to a counter in memory; at most one write is in flight, and it
takes every count waiting as one number per (name, label): a job's size is bounded by the number of
distinct counters, however many refusals it carries. Counts are coalesced, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from listgate.spool import Counts

log = logging.getLogger(__name__)

FIRST_PAUSE, LAST_PAUSE = 0.5, 30.0  # seconds before writing again after a failure, doubling


class Tally:
    """Counts waiting on the running loop; one task writes them, a job at a time, until none wait.

    write(counts) writes one job and returns once it is committed; write_now(counts) hands one
    over without waiting, for what still waits when the loop stops (its tasks are cancelled).
    """

    def __init__(
        self,
        write: Callable[[Counts], Awaitable[object]],
        write_now: Callable[[Counts], object],
    ) -> None:
        self.write = write
        self.write_now = write_now
        self.waiting: Counter[tuple[str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, label: str) -> None:
        """Count one event (on the loop; never waits): written with the next job."""
        self.waiting[(name, label)] += 1
        if self._task is None:
            self._start()

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flush())
        self._task.add_done_callback(self._ended)

    def _take(self) -> Counts:
        counts = tuple((name, label, n) for (name, label), n in sorted(self.waiting.items()))
        self.waiting.clear()
        return counts

    async def _flush(self) -> None:
        """Write what waits, again and again until nothing does; after a failure, put it back."""
        pause = FIRST_PAUSE
        while self.waiting:
            counts = self._take()
            try:
                await self.write(counts)
            except Exception as exc:  # noqa: BLE001 - a count never changes a reply
                self.waiting.update({(name, label): n for name, label, n in counts})
                log.warning(
                    "could not write %s, trying again in %.1f s: %s", describe(counts), pause, exc
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, LAST_PAUSE)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if not self.waiting:
            return
        if task.cancelled():  # the loop is stopping: no task can wait for a commit any more
            counts = self._take()
            try:
                self.write_now(counts)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not write %s while stopping: %s", describe(counts), exc)
        else:  # counted after the task's last look, before it ended
            self._start()


def describe(counts: Counts) -> str:
    """'3 counts (refused:too-big 2, refused:over-budget 1)', for logs."""
    total = sum(n for _, _, n in counts)
    each = ", ".join(f"{name}:{label} {n}" for name, label, n in sorted(counts))
    return f"{total} count{'s' if total != 1 else ''} ({each})"
