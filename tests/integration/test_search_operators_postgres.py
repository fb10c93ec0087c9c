"""The search operators' table on PostgreSQL: the same posts found as on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from listgate import lists
from listgate.db import transaction
from tests.unit.webarchive.test_search_limits import fill_limits, run_limits
from tests.unit.webarchive.test_search_operators import fill, fill_pages, run_pages, run_table

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "posts,searches",
    [(fill, run_table), (fill_pages, run_pages), (fill_limits, run_limits)],
    ids=["every operator", "leaving posts out pages", "values as long as what they search"],
)
def test_on_postgres(pg_web: Any, posts: Callable[..., None], searches: Callable[..., Any]) -> None:
    app, factory = pg_web
    with transaction(factory) as session:
        lists.create(session, "dev")
    posts(factory)
    assert searches(app) == []
