"""Migration 0025 (facts_epoch and, on PostgreSQL, its triggers) down and up on SQLite and
PostgreSQL: up, the row is there and (PostgreSQL) every change of a fact the gateway decides by
moves it while the archiver's own writes (a list's counters, a thread follow) leave it; down, the
table, the triggers and their function are gone and the tables they watched take writes as
before; a second round does the same."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text

from listgate.models.epoch import BUMP, DECIDING_COLUMNS, EPOCH_TABLE, POSTGRES_TRIGGERS
from listgate.schema import current, head, upgrade
from listgate.store import DECIDING
from tests.support.migrations import ENGINES, before, blank_engine, downgrade

pytestmark = pytest.mark.integration

engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)


def _epoch(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT epoch FROM {EPOCH_TABLE} WHERE id = 1")).scalar_one())


def _run(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


def _moves(engine: Engine, sql: str) -> bool:
    """Whether sql, committed, changed the facts epoch."""
    was = _epoch(engine)
    _run(engine, sql)
    return _epoch(engine) != was


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        return {name for name in found.scalars() if name.startswith("facts_epoch")}


def _function(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname = :n"), {"n": BUMP}
            ).scalar_one()
        )


def test_0025_up_and_down_twice(engine: Engine) -> None:
    previous = before("0025")
    postgresql = engine.dialect.name == "postgresql"
    upgrade(engine)
    _run(
        engine,
        "INSERT INTO lists (name, title, description, policy, private, dmarc_mode, moderators,"
        " owners, reply_to, created_at, message_count, thread_count, changes) VALUES ('dev', '',"
        " '', 'open', false, 'auto', '', '', 'none', CURRENT_TIMESTAMP, 0, 0, 0)",
    )
    for _ in range(2):
        assert current(engine) == head()
        assert EPOCH_TABLE in inspect(engine).get_table_names()
        _epoch(engine)  # the row is there
        if postgresql:
            assert _triggers(engine) == {t[0] for t in POSTGRES_TRIGGERS}
            assert _moves(engine, "UPDATE lists SET policy = 'members'")
            assert _moves(engine, "UPDATE lists SET moderators = 'mod@example.org'")
            # an owner posts as a member does (privacy.admits, policy.members_among)
            assert _moves(
                engine,
                "UPDATE lists SET owners = CASE owners WHEN '' THEN 'own@example.org' ELSE '' END",
            )
            assert not _moves(
                engine,
                "UPDATE lists SET message_count = message_count + 1,"
                " thread_count = 1, changes = changes + 1, last_activity = now()",
            )
            assert not _moves(engine, "UPDATE lists SET policy = policy")
            assert _moves(
                engine,
                "INSERT INTO bans (list_id, address, reason, banned_by,"
                " created_at) SELECT id, 'troll@example.org', '', '', now() FROM lists",
            )
            assert _moves(engine, "DELETE FROM bans")
            subscribe = (
                "INSERT INTO subscriptions (list_id, address, kind, thread_key, status,"
                " created_at, bounce_score, digest_frequency, end_reason, approved_by)"
                " SELECT id, 'ann@example.org', '{kind}', {key}, 'active', now(), 0, 'daily',"
                " '', '' FROM lists"
            )
            assert not _moves(engine, subscribe.format(kind="thread", key=7))
            assert _moves(engine, subscribe.format(kind="list", key=0))
            assert not _moves(engine, "UPDATE subscriptions SET bounce_score = 1.5")
            assert _moves(engine, "UPDATE subscriptions SET status = 'ended' WHERE kind = 'list'")
            assert not _moves(engine, "DELETE FROM subscriptions WHERE kind = 'thread'")
            assert _moves(engine, "DELETE FROM subscriptions")
            assert _moves(
                engine,
                "INSERT INTO lists (name, title, description, policy, private,"
                " dmarc_mode, moderators, owners, reply_to, created_at, message_count,"
                " thread_count, changes) SELECT 'x' || id, '', '', 'open', false,"
                " 'auto', '', '', 'none', now(), 0, 0, 0 FROM lists",
            )
            assert _moves(engine, "DELETE FROM lists WHERE name <> 'dev'")
        downgrade(engine, previous)
        assert current(engine) == previous
        assert EPOCH_TABLE not in inspect(engine).get_table_names()
        if postgresql:
            assert _triggers(engine) == set()
            assert _function(engine) == 0
        _run(engine, "UPDATE lists SET policy = 'open', moderators = ''")  # no trigger left
        upgrade(engine)


def test_the_trigger_watches_every_column_the_gateway_decides_by() -> None:
    """A column added to the facts the writer caches (listgate.store.DECIDING) but not watched
    would leave a cache that never learns of its change (an owner added after webhunt2 made
    owners post as members: her post refused until something else moved the epoch)."""
    assert set(DECIDING) - {"id"} == set(DECIDING_COLUMNS)
