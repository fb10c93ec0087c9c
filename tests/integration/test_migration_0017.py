"""Migration 0017 (messages.derivation, raised when what a post shows is derived again) on an
archive of posts, SQLite and PostgreSQL: down drops the column and keeps every post as it was; up
adds it at 0 for every post, without rewriting the table on PostgreSQL (a constant default stays
in the catalogue); a second round does the same."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

from listgate import lists
from listgate.db import session_factory, transaction, writer
from listgate.models import Message
from listgate.schema import current, head, upgrade
from tests.integration.test_thread_roots import mail, post
from tests.support.migrations import (
    ENGINES,
    as_now,
    before,
    blank_engine,
    column_values,
    downgrade,
    rows_but,
    table_file,
)

pytestmark = pytest.mark.integration


engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)


def test_0017_down_and_up_keeps_every_post_and_starts_each_at_0(engine: Engine) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
    for n in range(3):
        post(db, "dev", mail(f"p{n}@x.test", f"Post {n}", n, "Ann <ann@example.org>"))
    with transaction(db) as s:  # one derived again (listgate.reparse)
        s.execute(update(Message).where(Message.message_id == "p1@x.test").values(derivation=1))
    assert column_values(engine, Message.derivation) == [0, 1, 0]
    posts = rows_but(engine, "messages", "derivation")
    previous = before("0017")
    for _ in range(2):
        downgrade(engine, previous)
        assert current(engine) == previous
        assert column_values(engine, Message.derivation) is None
        assert rows_but(engine, "messages", "derivation") == as_now(engine, "messages", posts)
        stored = table_file(engine, "messages") if engine.dialect.name == "postgresql" else None
        upgrade(engine)
        assert current(engine) == head()
        assert column_values(engine, Message.derivation) == [0, 0, 0]
        assert rows_but(engine, "messages", "derivation") == as_now(engine, "messages", posts)
        if stored is not None:
            assert table_file(engine, "messages") == stored  # no row rewritten
