"""What the tests of one migration share: an empty database on each engine, going down, and
what the threads look like."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text

from listgate.db import make_engine, session_factory
from listgate.models import MailingList, Message
from listgate.schema import alembic_config
from tests.support import roots
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


def before(revision: str) -> str:
    """The revision a migration goes down to."""
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(previous, str)
    return previous


def rows_but(engine: Engine, table: str, column: str) -> list[dict[str, Any]]:
    """Every row of table as stored, by id, but column (the one a migration adds)."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).mappings().all()
    return [{k: v for k, v in r.items() if k != column} for r in rows]


def as_now(engine: Engine, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """rows in the columns table has now (a later revision's columns come and go with the
    downgrade too)."""
    columns = {c["name"] for c in inspect(engine).get_columns(table)}
    return [{k: v for k, v in r.items() if k in columns} for r in rows]


def column_values(engine: Engine, column: Any) -> list[Any] | None:
    """A mapped column's value in each row of its table, by id, as the model reads it; None when
    the table has no such column (yet, or any more)."""
    model = column.class_
    if column.key not in {c["name"] for c in inspect(engine).get_columns(model.__tablename__)}:
        return None
    with session_factory(engine)() as s:
        return list(s.scalars(select(column).order_by(model.id)))


def table_file(engine: Engine, table: str) -> object:
    """Where PostgreSQL keeps a table's rows: a rewrite of the table gives it a new file."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT relfilenode FROM pg_class WHERE relname = :t"), {"t": table}
        ).scalar_one()


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to revision."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def thread_state(engine: Engine) -> tuple[list[str], dict[str, int]]:
    """(what breaks the thread invariants, each list's change counter)."""
    with session_factory(engine)() as s:
        mlists = s.scalars(select(MailingList)).all()
        broken = [p for mlist in mlists for p in roots.problems(s, mlist.id)]
        return broken, {mlist.name: mlist.changes for mlist in mlists}


def thread_of(engine: Engine, mid: str) -> int:
    """The thread of the message whose Message-ID is mid."""
    with session_factory(engine)() as s:
        return s.scalars(select(Message.thread_id).where(Message.message_id == mid)).one()
