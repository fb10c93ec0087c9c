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
