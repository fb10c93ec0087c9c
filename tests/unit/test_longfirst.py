"""The long tests are the first that pytest-xdist hands out, spread over its workers.

xdist's own load scheduler is given the order tests/support/longfirst.py makes, and the tests
each worker is first sent are read back from it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from xdist.scheduler.load import LoadScheduling  # type: ignore[import-untyped]  # no hints

from tests.support.longfirst import long_first

WORKERS = 4


class Collected:
    """A collected test: its name and, for a long one, its marked seconds."""

    def __init__(self, name: str, seconds: float | None = None) -> None:
        self.name = name
        self.marker = None if seconds is None else pytest.mark.long(seconds).mark

    def get_closest_marker(self, name: str) -> Any:
        return self.marker if name == "long" else None


class Worker:
    """What xdist's scheduler sends a worker, kept."""

    def __init__(self, number: int) -> None:
        self.gateway = SimpleNamespace(id=f"gw{number}")
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent += indices

    def shutdown(self) -> None:
        self.shutting_down = True


class Options:
    """`make test`'s options as xdist's scheduler reads them: -n WORKERS, nothing else."""

    def getvalue(self, name: str) -> Any:
        return {"tx": [f"{WORKERS}*popen"]}[name]

    def getoption(self, name: str) -> Any:
        return {"maxschedchunk": None}[name]


def first_sent(order: list[Collected]) -> list[list[str]]:
    """The names of the tests xdist's load scheduler first sends each of WORKERS workers."""
    scheduler = LoadScheduling(cast(Any, Options()))
    workers = [Worker(i) for i in range(WORKERS)]
    names = [test.name for test in order]
    for worker in workers:
        scheduler.add_node(cast(Any, worker))
        scheduler.add_node_collection(cast(Any, worker), names)
    scheduler.schedule()
    return [[names[i] for i in worker.sent] for worker in workers]


def test_each_worker_starts_with_a_like_share_of_the_long_tests() -> None:
    seconds = {f"long{i}": float(100 - 5 * i) for i in range(10)}
    tests = [Collected(f"short{i}") for i in range(400)]
    for i, (name, took) in enumerate(seconds.items()):
        tests.insert(37 * i, Collected(name, took))  # here and there in the collection
    order = cast(list[Collected], long_first(cast(Any, tests), WORKERS))
    assert sorted(t.name for t in order) == sorted(t.name for t in tests), "a test lost or doubled"
    batches = first_sent(order)
    assert all(batch[0].startswith("long") for batch in batches), [b[:3] for b in batches]
    shares = [sum(seconds.get(name, 0) for name in batch) for batch in batches]
    assert sum(shares) == sum(seconds.values()), f"long tests left for later: {shares}"
    assert max(shares) - min(shares) <= 100, f"one worker has most of the long tests: {shares}"
