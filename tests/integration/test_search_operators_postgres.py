"""The search operators' table on PostgreSQL: the same posts found as on SQLite."""

from __future__ import annotations

import pytest

from listgate import lists
from listgate.db import make_engine, session_factory, transaction, writer
from tests.unit.webarchive.test_search_operators import fill, run_table
from webarchive import create_app

pytestmark = pytest.mark.integration


def test_every_operator_on_postgres(pg_settings):  # type: ignore[no-untyped-def]
    engine = make_engine(pg_settings)
    factory = session_factory(writer(engine))
    with transaction(factory) as session:
        lists.create(session, "dev")
    fill(factory)
    app = create_app(pg_settings)
    try:
        assert run_table(app) == []
    finally:
        app.extensions["listgate"].engine.dispose()
        engine.dispose()
