"""Pages of the biggest list of the run (1M messages full, 100k quick), search goal included."""

from __future__ import annotations

from bench.common import Context, Row
from bench.pages import big


def run(ctx: Context) -> list[Row]:
    """A row per kind of page on the big list (no peer: public-inbox is compared on linux-man)."""
    return big(ctx)
