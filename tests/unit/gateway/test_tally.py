"""The tally of counts written one job at a time (gateway/tally.py), on a real event loop."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from gateway import tally
from gateway.tally import Tally
from listgate.spool import Counts


class Writes:
    """write and write_now for a Tally: each held until released, every job recorded."""

    def __init__(self) -> None:
        self.jobs: list[Counts] = []  # every write started, in order
        self.now: list[Counts] = []  # handed over by write_now
        self.release = asyncio.Event()
        self.fail = 0  # writes still to fail

    async def write(self, counts: Counts) -> None:
        self.jobs.append(counts)
        await self.release.wait()
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")

    def write_now(self, counts: Counts) -> None:
        self.now.append(counts)

    def written(self) -> Counter[tuple[str, str]]:
        written: Counter[tuple[str, str]] = Counter()
        for job in self.jobs:
            assert len({(name, label) for name, label, _ in job}) == len(job), job
            written.update({(name, label): n for name, label, n in job})
        return written


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_counts_added_while_a_write_is_held_wait_for_one_next_write() -> None:
    async def journey() -> Writes:
        w = Writes()
        counts = Tally(w.write, w.write_now)
        counts.add("refused", "too-big")
        await settle()
        for _ in range(1000):
            counts.add("refused", "too-big")
            counts.add("refused", "line-too-long")
        await settle()
        assert len(w.jobs) == 1, "a second write started while the first was held"
        w.release.set()
        await settle()
        # one line per counter, not per refusal
        assert w.jobs[1] == (("refused", "line-too-long", 1000), ("refused", "too-big", 1000))
        counts.add("refused", "over-budget")  # after the flood: a write of its own
        await settle()
        return w

    w = asyncio.run(journey())
    assert w.written() == {
        ("refused", "too-big"): 1001,
        ("refused", "line-too-long"): 1000,
        ("refused", "over-budget"): 1,
    }
    assert len(w.jobs) == 3 and w.now == []


def test_a_failed_write_is_tried_again_with_the_counts_added_since(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tally, "FIRST_PAUSE", 0.01)

    async def journey() -> Writes:
        w = Writes()
        w.fail = 1
        counts = Tally(w.write, w.write_now)
        counts.add("refused", "too-big")
        await settle()
        counts.add("refused", "too-big")
        w.release.set()
        for _ in range(500):  # 5 s at most
            if len(w.jobs) == 2:
                break
            await asyncio.sleep(0.01)
        await settle()
        return w

    w = asyncio.run(journey())
    assert w.jobs == [(("refused", "too-big", 1),), (("refused", "too-big", 2),)]
    assert [r.getMessage() for r in caplog.records] == [
        "could not write 1 count (refused:too-big 1), trying again in 0.0 s: disk full"
    ]


def test_counts_waiting_when_the_loop_stops_are_handed_over_without_waiting() -> None:
    w = Writes()

    async def stop_with_counts_waiting() -> None:
        counts = Tally(w.write, w.write_now)
        counts.add("refused", "too-big")
        await settle()  # the first write is held
        for _ in range(3):
            counts.add("refused", "over-budget")
        # as aiosmtpd's controller stops: every task of the loop cancelled
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        await settle()

    asyncio.run(stop_with_counts_waiting())
    assert w.jobs == [(("refused", "too-big", 1),)]  # already queued for the writer: not again
    assert w.now == [(("refused", "over-budget", 3),)]


def test_counts_of_a_write_never_started_are_handed_over_when_the_loop_stops() -> None:
    w = Writes()

    async def stop_at_once() -> None:
        counts = Tally(w.write, w.write_now)
        counts.add("refused", "too-big")
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()  # before the writing task ever ran
        await settle()

    asyncio.run(stop_at_once())
    assert w.jobs == []
    assert w.now == [(("refused", "too-big", 1),)]
