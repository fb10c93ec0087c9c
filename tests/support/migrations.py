"""What the tests of one migration share: an empty database on each engine, and going down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine

from listgate.db import make_engine
from listgate.schema import alembic_config
from tests.support.config import make_settings
from tests.support.services import new_database


def blank_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database on SQLite or PostgreSQL (request.param), not migrated.

    A migration's test module makes it its `engine`:
    `engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)`.
    """
    url = {}
    if request.param == "postgresql":
        url["LISTGATE_DATABASE_URL"] = new_database(
            request.getfixturevalue("postgres_url"), migrated=False
        )
    made = make_engine(make_settings(tmp_path, **url))
    yield made
    made.dispose()


ENGINES = ["sqlite", "postgresql"]


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to revision."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
