"""Migration 0018 (messages.published_at, when a held post was approved) on an archive of posts,
SQLite and PostgreSQL: down drops the column and keeps every post as it was; up adds it empty
for every post (published when received, as the digests already sent assumed), without
rewriting the table on PostgreSQL; a second round does the same."""

from __future__ import annotations

from datetime import UTC, datetime

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


def test_0018_down_and_up_keeps_every_post_published_when_received(engine: Engine) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
    for n in range(3):
        post(db, "dev", mail(f"p{n}@x.test", f"Post {n}", n, "Ann <ann@example.org>"))
    approved = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    with transaction(db) as s:  # one approved by a moderator
        s.execute(
            update(Message).where(Message.message_id == "p1@x.test").values(published_at=approved)
        )
    assert column_values(engine, Message.published_at) == [None, approved, None]
    posts = rows_but(engine, "messages", "published_at")
    previous = before("0018")
    for _ in range(2):
        downgrade(engine, previous)
        assert current(engine) == previous
        assert column_values(engine, Message.published_at) is None
        assert rows_but(engine, "messages", "published_at") == as_now(engine, "messages", posts)
        stored = table_file(engine, "messages") if engine.dialect.name == "postgresql" else None
        upgrade(engine)
        assert current(engine) == head()
        assert column_values(engine, Message.published_at) == [None, None, None]
        assert rows_but(engine, "messages", "published_at") == as_now(engine, "messages", posts)
        if stored is not None:
            assert table_file(engine, "messages") == stored  # no row rewritten
