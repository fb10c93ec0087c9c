"""The long tests run first, spread over the xdist workers: the suite does not end on one of them.

A test marked `@pytest.mark.long(seconds)` (about how long it takes in CI; registered in
pyproject.toml) is moved to the front of the collection. Under pytest-xdist's default `load`
distribution each worker is first sent a batch of consecutive tests, a quarter of its share; a
long test handed out late leaves the other workers idle at the end (the suite's tail), and long
tests all at the very front would all land in the first worker's batch. So the long tests,
longest first, are dealt to the workers in turn (down and back, so each gets a like sum) and
each worker's batch starts with its own. Every worker computes the same order from the same
collection and worker count, as xdist requires; without xdist the long tests simply come first.
"""

from __future__ import annotations

import os

import pytest


def seconds(item: pytest.Item) -> float:
    """The marked duration of a long test (0 for a long test that does not say)."""
    marker = item.get_closest_marker("long")
    assert marker is not None
    return float(marker.args[0]) if marker.args else 0.0


def first_batch(total: int, workers: int) -> int:
    """How many consecutive tests xdist's load scheduling first sends each worker."""
    return max(total // workers // 4, 2)


def deal(long: list[pytest.Item], workers: int) -> list[list[pytest.Item]]:
    """The long tests, longest first, dealt to the workers down and back (0 … n-1, n-1 … 0)."""
    hands: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for i, item in enumerate(sorted(long, key=seconds, reverse=True)):  # stable: ties keep order
        turn, seat = divmod(i, workers)
        hands[seat if turn % 2 == 0 else workers - 1 - seat].append(item)
    return hands


def long_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """items reordered: each worker's first batch begins with its share of the long tests."""
    long = [item for item in items if item.get_closest_marker("long") is not None]
    if not long:
        return items
    rest = iter([item for item in items if item.get_closest_marker("long") is None])
    batch = first_batch(len(items), workers)
    ordered: list[pytest.Item] = []
    for hand in deal(long, workers):
        ordered += hand
        ordered += [item for _, item in zip(range(batch - len(hand)), rest, strict=False)]
    ordered += rest
    return ordered


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the long tests first (see the module's docstring)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    items[:] = long_first(items, max(workers, 1))
