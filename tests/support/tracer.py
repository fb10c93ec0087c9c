"""Coverage's tracer paused over the long tail of a corpus loop (`make test` runs under --cov).

Under the tracer a CPU-bound loop in the test process costs about twice its CPU (a linux-man
shard of tests/integration/test_parse_corpora.py: 10.7 s of user time traced, 5.3 s not). Past
its first items such a loop runs the same code again on other data: the first items are traced,
so each loop's own paths still count, and the rest run at full speed, checked as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from coverage import Coverage

T = TypeVar("T")


def traced_first(items: Iterable[T], n: int) -> Iterator[T]:
    """items, with coverage's tracer (if one runs) on for the first n and paused for the rest."""
    it = iter(items)
    yield from islice(it, n)
    cov = Coverage.current()
    if cov is None:
        yield from it
        return
    cov.stop()
    try:
        yield from it
    finally:
        cov.start()


class Search:
    """A model search (hypothesis) whose first `traced` examples run under coverage's tracer and
    the rest with it paused: call `example()` as each example begins (the machine's __init__),
    `close()` after the test (a fixture's teardown) to turn the tracer on again."""

    def __init__(self, traced: int) -> None:
        self.traced = traced
        self.begun = 0
        self.paused: Coverage | None = None

    def example(self) -> None:
        """One more example begins; past the traced ones, pause the tracer (once)."""
        self.begun += 1
        if self.begun == self.traced + 1 and self.paused is None:
            self.paused = Coverage.current()
            if self.paused is not None:
                self.paused.stop()

    def close(self) -> None:
        """The search is over: the tracer on again, the count back to zero."""
        if self.paused is not None:
            self.paused.start()
        self.paused, self.begun = None, 0
