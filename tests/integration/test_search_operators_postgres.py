"""The search operators' table on PostgreSQL: the same posts found as on SQLite."""

from __future__ import annotations

import pytest

from listgate import lists
from listgate.db import transaction
from tests.unit.webarchive.test_search_operators import fill, fill_pages, run_pages, run_table

pytestmark = pytest.mark.integration


def test_every_operator_on_postgres(pg_web):  # type: ignore[no-untyped-def]
    app, factory = pg_web
    with transaction(factory) as session:
        lists.create(session, "dev")
    fill(factory)
    assert run_table(app) == []


def test_leaving_posts_out_pages_on_postgres(pg_web):  # type: ignore[no-untyped-def]
    app, factory = pg_web
    with transaction(factory) as session:
        lists.create(session, "dev")
    fill_pages(factory)
    assert run_pages(app) == []
