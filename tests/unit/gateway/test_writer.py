"""The group writer: waiting jobs share one write; each client gets its own result or error."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from gateway.writer import GroupWriter, WriterStopped


def test_jobs_waiting_together_are_written_together_and_answered_each() -> None:
    gate, batches = threading.Event(), []

    def write(jobs: list[int]) -> list[int | BaseException]:
        gate.wait(10)
        batches.append(list(jobs))
        return [ValueError(f"bad {j}") if j == 3 else j * 10 for j in jobs]

    w: GroupWriter[int, int] = GroupWriter(write)
    w.start()
    try:
        futures = [w.submit(j) for j in range(5)]
        gate.set()
        assert [f.result(10) for f in futures[:3]] + [futures[4].result(10)] == [0, 10, 20, 40]
        with pytest.raises(ValueError, match="bad 3"):
            futures[3].result(10)
    finally:
        w.stop(10)
    assert sorted(j for b in batches for j in b) == [0, 1, 2, 3, 4]
    assert len(batches) <= 2  # the first job may start alone; the rest waited and went together


def test_a_failed_write_fails_every_job_of_the_batch_and_the_writer_goes_on() -> None:
    calls = []

    def write(jobs: list[str]) -> list[str | BaseException]:
        calls.append(jobs)
        if "commit-fails" in jobs:
            raise OSError("disk full")
        return [j.upper() for j in jobs]

    w: GroupWriter[str, str] = GroupWriter(write, max_batch=1)
    w.start()
    try:
        with pytest.raises(OSError, match="disk full"):
            w.submit("commit-fails").result(10)
        assert w.submit("next").result(10) == "NEXT"
    finally:
        w.stop(10)


def test_a_stopped_writer_refuses_at_once() -> None:
    w: GroupWriter[int, int] = GroupWriter(list)
    with pytest.raises(WriterStopped):
        w.submit(1).result(1)
    w.start()
    assert w.submit(2).result(10) == 2
    w.stop(10)
    with pytest.raises(WriterStopped):
        w.submit(3).result(1)


def test_coroutines_get_their_own_results_and_the_loop_is_woken_once_per_batch() -> None:
    """Each wake-up of the event loop from the writer thread is a hand-over of the GIL: the
    answers of a whole batch arrive together. A coroutine that gave up (a client that left) is
    skipped; the others still get theirs."""
    gate, started, batches = threading.Event(), threading.Event(), []

    def write(jobs: list[int]) -> list[int | BaseException]:
        started.set()
        gate.wait(10)
        batches.append(list(jobs))
        return [ValueError(f"bad {j}") if j == 3 else j * 10 for j in jobs]

    async def main() -> tuple[list[int | BaseException], int]:
        loop = asyncio.get_running_loop()
        wakes = [0]
        real = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            wakes[0] += 1
            return real(*args, **kwargs)

        first = w.submit_waiting(100)  # taken at once: the writer waits on the gate with it
        await loop.run_in_executor(None, started.wait, 10)  # the others wait behind it
        loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]  # a spy on the wake-ups
        waiting = [w.submit_waiting(j) for j in range(5)]
        waiting[1].cancel()  # its client left
        gate.set()
        done = await asyncio.gather(first, *waiting, return_exceptions=True)
        return done, wakes[0]

    w: GroupWriter[int, int] = GroupWriter(write)
    w.start()
    try:
        done, wakes = asyncio.run(main())
    finally:
        w.stop(10)
    assert batches == [[100], [0, 1, 2, 3, 4]]
    assert [done[0], done[1], done[3], done[5]] == [1000, 0, 20, 40]
    assert isinstance(done[2], asyncio.CancelledError)
    assert isinstance(done[4], ValueError) and str(done[4]) == "bad 3"
    assert wakes == 2  # one per batch


def test_a_coroutine_submitting_to_a_stopped_writer_is_refused_at_once() -> None:
    w: GroupWriter[int, int] = GroupWriter(list)

    async def main() -> None:
        with pytest.raises(WriterStopped):
            await w.submit_waiting(1)

    asyncio.run(main())


class _Stages:
    """begin/finish over ints: a batch's result is each job times ten, written (answered) when the
    next batch begins or when it finishes alone; a job 13 makes begin raise."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[tuple[str, list[int], list[int] | None]] = []

    def begin(self, jobs: list[int], behind: list[int] | None) -> tuple[list[Any], list[int]]:
        self.calls.append(("begin", list(jobs), behind))
        self.gate.wait(10)
        if 13 in jobs:
            raise OSError("lost connection")
        return ([] if behind is None else [j * 10 for j in behind]), list(jobs)

    def finish(self, begun: list[int]) -> list[Any]:
        self.calls.append(("finish", begun, None))
        return [j * 10 for j in begun]


def test_with_stages_a_batch_is_written_with_the_next_or_alone_and_each_job_answered() -> None:
    stages = _Stages()
    w: GroupWriter[int, int] = GroupWriter(list, stages=(stages.begin, stages.finish))
    w.start()
    try:
        first = w.submit(1)  # begun alone; 2 and 3 wait behind the gate, then begin with 1 behind
        _until(lambda: len(stages.calls) == 1)
        futures = [first, w.submit(2), w.submit(3)]
        stages.gate.set()
        assert [f.result(10) for f in futures] == [10, 20, 30]
        assert w.submit(4).result(10) == 40  # nothing waits: finished alone, answered at once
    finally:
        w.stop(10)
    assert stages.calls[:3] == [
        ("begin", [1], None),
        ("begin", [2, 3], [1]),
        ("finish", [2, 3], None),
    ]
    assert stages.calls[3:] == [("begin", [4], None), ("finish", [4], None)]


def test_with_stages_a_begin_that_raises_fails_its_batch_and_the_one_behind() -> None:
    stages = _Stages()
    w: GroupWriter[int, int] = GroupWriter(list, stages=(stages.begin, stages.finish))
    w.start()
    try:
        first = w.submit(1)
        _until(lambda: len(stages.calls) == 1)
        futures = [first, w.submit(13)]
        stages.gate.set()
        # begin raised with 1 behind: whether 1 was written is not known, so no answer for it
        assert [type(f.exception(10)) for f in futures] == [OSError, OSError]
        assert w.submit(5).result(10) == 50  # the writer goes on
    finally:
        w.stop(10)


def _until(condition: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
