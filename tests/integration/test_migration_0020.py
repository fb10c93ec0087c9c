"""Migration 0020 (post_hidings; digests_sent found by period) on an archive, SQLite and
PostgreSQL: a post hidden by readers' reports before the upgrade gets its stretch, from the
report that hid it, so putting it back after the upgrade brings it to the digest readers whose
digest went without it; down drops the table and the index and keeps every post; a second round
does the same."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, inspect, select, text

from listgate import lists, reports
from listgate.db import session_factory, transaction, writer
from listgate.models import DigestSent, Message, PostHiding
from listgate.models.web import Report
from listgate.schema import current, head, upgrade
from listgate.states import DigestFrequency, DigestState
from tests.integration.test_thread_roots import mail, post
from tests.support.migrations import ENGINES, as_now, before, blank_engine, downgrade, rows_but

pytestmark = pytest.mark.integration

engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)
REPORTED = (datetime(2026, 11, 30, 9, tzinfo=UTC), datetime(2026, 11, 30, 11, tzinfo=UTC))


def _indexes(engine: Engine) -> set[str]:
    return {i["name"] or "" for i in inspect(engine).get_indexes("digests_sent")}


def _hidings(engine: Engine) -> list[tuple[str, datetime, datetime | None]] | None:
    if "post_hidings" not in inspect(engine).get_table_names():
        return None
    with session_factory(engine)() as s:
        return [
            (m, h, r)
            for m, h, r in s.execute(
                select(Message.message_id, PostHiding.hidden_at, PostHiding.restored_at)
                .join(Message, Message.id == PostHiding.message_pk)
                .order_by(PostHiding.id)
            )
        ]


def test_0020_keeps_the_hidden_posts_stretch_and_finds_a_periods_digests(engine: Engine) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
    for n in range(3):
        post(db, "dev", mail(f"p{n}@x.test", f"Post {n}", n, "Ann <ann@example.org>"))
    with transaction(db) as s:  # p1 hidden by two readers' reports, the second at 11:00
        msg = s.scalars(select(Message).where(Message.message_id == "p1@x.test")).one()
        for n, at in enumerate(REPORTED):
            s.add(Report(message_pk=msg.id, list_id=msg.list_id, address=f"r{n}@x", created_at=at))
        reports.hide(s, msg, now=REPORTED[1])
    posts = rows_but(engine, "messages", "")
    previous = before("0020")
    for _ in range(2):
        downgrade(engine, previous)
        assert current(engine) == previous
        assert _hidings(engine) is None and "ix_digests_sent_period" not in _indexes(engine)
        assert rows_but(engine, "messages", "") == as_now(engine, "messages", posts)
        upgrade(engine)
        assert current(engine) == head()
        assert _hidings(engine) == [("p1@x.test", REPORTED[1], None)], (
            "a post hidden before the upgrade is hidden since the report that hid it"
        )
        assert "ix_digests_sent_period" in _indexes(engine)
        assert rows_but(engine, "messages", "") == as_now(engine, "messages", posts)

    if engine.dialect.name == "sqlite":  # a period's rows by the new index, not all the list's
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
