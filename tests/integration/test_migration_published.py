"""Migrations 0018 (messages.published_at, when a held post was approved) and 0020
(messages.weekly_published_at, when a post put back was published again for weekly digest
readers) on an archive of posts, SQLite and PostgreSQL: down drops the column and keeps every
post as it was; up adds it empty for every post (published when received, as the digests already
sent assumed), without rewriting the table on PostgreSQL; a second round does the same."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, inspect, select, text, update

from listgate import lists
from listgate.db import session_factory, transaction, writer
from listgate.models import DigestSent, Message
from listgate.schema import current, head, upgrade
from listgate.states import DigestFrequency, DigestState
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


@pytest.mark.parametrize(
    "revision, column", [("0018", "published_at"), ("0020", "weekly_published_at")]
)
def test_down_and_up_keeps_every_post_published_when_received(
    engine: Engine, revision: str, column: str
) -> None:
    published = getattr(Message, column)
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
    for n in range(3):
        post(db, "dev", mail(f"p{n}@x.test", f"Post {n}", n, "Ann <ann@example.org>"))
    approved = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    with transaction(db) as s:  # one approved by a moderator, or put back
        s.execute(
            update(Message).where(Message.message_id == "p1@x.test").values({column: approved})
        )
    assert column_values(engine, published) == [None, approved, None]
    posts = rows_but(engine, "messages", column)
    previous = before(revision)
    for _ in range(2):
        downgrade(engine, previous)
        assert current(engine) == previous
        assert column_values(engine, published) is None
        assert rows_but(engine, "messages", column) == as_now(engine, "messages", posts)
        stored = table_file(engine, "messages") if engine.dialect.name == "postgresql" else None
        upgrade(engine)
        assert current(engine) == head()
        assert column_values(engine, published) == [None, None, None]
        assert rows_but(engine, "messages", column) == as_now(engine, "messages", posts)
        if stored is not None:
            assert table_file(engine, "messages") == stored  # no row rewritten


def test_0020_finds_a_periods_digests_by_the_period(engine: Engine) -> None:
    """A run's look-up of the addresses already claimed for a period (and restore's of the
    digests made before a post was hidden) probes (list, frequency, day), not every digest row
    the list ever had."""

    def indexes() -> set[str]:
        return {i["name"] or "" for i in inspect(engine).get_indexes("digests_sent")}

    upgrade(engine)
    assert "ix_digests_sent_period" in indexes()
    if engine.dialect.name == "sqlite":
        query = select(DigestSent.address).where(
            DigestSent.list_id == 1,
            DigestSent.frequency == DigestFrequency.DAILY,
            DigestSent.day == date(2026, 11, 16),
            DigestSent.status != DigestState.DEFERRED,  # as worker.digest_owed.claimed asks
        )
        sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            plan = " ".join(r[3] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        assert "USING INDEX ix_digests_sent_period" in plan, plan
    downgrade(engine, before("0020"))
    assert "ix_digests_sent_period" not in indexes()
    upgrade(engine)
    assert "ix_digests_sent_period" in indexes()
