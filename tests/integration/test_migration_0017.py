"""Migration 0017 (messages.derivation, raised when what a post shows is derived again) on an
archive of posts, SQLite and PostgreSQL: down drops the column and keeps every post as it was; up
adds it at 0 for every post, without rewriting the table on PostgreSQL (a constant default stays
in the catalogue); a second round does the same."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text, update

from listgate import lists
from listgate.db import session_factory, transaction, writer
from listgate.models import Message
from listgate.schema import alembic_config, current, head, upgrade
from tests.integration.test_thread_roots import mail, post
from tests.support.migrations import ENGINES, blank_engine, downgrade

pytestmark = pytest.mark.integration


engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)


def _before_0017() -> str:
    previous = ScriptDirectory.from_config(alembic_config()).get_revision("0017").down_revision
    assert isinstance(previous, str)
    return previous


def _posts(engine: Engine) -> list[dict[str, Any]]:
    """Every post's row as stored, but the new column."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM messages ORDER BY id")).mappings().all()
    return [{k: v for k, v in r.items() if k != "derivation"} for r in rows]


def _as_now(engine: Engine, posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """posts in the columns the table has now (a later revision's columns come and go with the
    downgrade too)."""
    columns = {c["name"] for c in inspect(engine).get_columns("messages")}
    return [{k: v for k, v in p.items() if k in columns} for p in posts]


def _derivations(engine: Engine) -> list[int] | None:
    """Each post's counter; None when the column is not there."""
    if "derivation" not in {c["name"] for c in inspect(engine).get_columns("messages")}:
        return None
    with session_factory(engine)() as s:
        return list(s.scalars(select(Message.derivation).order_by(Message.id)))


def _file_of_messages(engine: Engine) -> object:
    """Where PostgreSQL keeps the table's rows: a rewrite of the table gives it a new file."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT relfilenode FROM pg_class WHERE relname = 'messages'")
        ).scalar_one()


def test_0017_down_and_up_keeps_every_post_and_starts_each_at_0(engine: Engine) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
    for n in range(3):
        post(db, "dev", mail(f"p{n}@x.test", f"Post {n}", n, "Ann <ann@example.org>"))
    with transaction(db) as s:  # one derived again (listgate.reparse)
        s.execute(update(Message).where(Message.message_id == "p1@x.test").values(derivation=1))
    assert _derivations(engine) == [0, 1, 0]
    posts = _posts(engine)
    previous = _before_0017()
    for _ in range(2):
        downgrade(engine, previous)
        assert current(engine) == previous
        assert _derivations(engine) is None
        assert _posts(engine) == _as_now(engine, posts)
        stored = _file_of_messages(engine) if engine.dialect.name == "postgresql" else None
        upgrade(engine)
        assert current(engine) == head()
        assert _derivations(engine) == [0, 0, 0]
        assert _posts(engine) == _as_now(engine, posts)
        if stored is not None:
            assert _file_of_messages(engine) == stored  # no row rewritten
