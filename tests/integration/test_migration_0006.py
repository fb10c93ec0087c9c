"""Migration 0006 on databases that already hold subscribers with history, SQLite and PostgreSQL.

A database at 0003 with a subscriber who was mailed and bounced is upgraded through 0004 (web
sessions), 0005 (administration: it rebuilds tables on SQLite), 0006 and what follows it (0007
reading alters people and messages, 0008 threading); then that subscriber can leave, come back and
switch to the weekly digest (the DELETE that failed on the foreign keys is gone), and the models
agree with the migrated schema, every table of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from listgate import lists, subscriptions
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import Delivery, Subscription
from listgate.schema import current, differences, head, upgrade
from tests.support.config import make_settings
from tests.support.factories import subscription_of
from tests.support.services import new_database

pytestmark = pytest.mark.integration


def _history_at_0003(engine: Engine) -> None:
    """A list, a subscriber, a post, its delivery and a bounce, written as the 0003 code would."""
    upgrade(engine, "0003")
    now = "2026-11-01 10:00:00"
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO lists (id, name, title, description, policy, private, dmarc_mode, "
            "moderators, created_at, message_count, thread_count) "
            f"VALUES (1, 'dev', 'dev', '', 'open', false, 'auto', '', '{now}', 1, 1)",
            "INSERT INTO subscriptions (id, list_id, address, kind, thread_key, status, "
            "created_at, bounce_score) "
            f"VALUES (1, 1, 'bob@example.org', 'list', 0, 'active', '{now}', 0)",
            "INSERT INTO raw_messages (id, sha256, size, data, received_at) "
            f"VALUES (1, 'x', 1, 'x', '{now}')",
            "INSERT INTO threads (id, list_id, subject, subject_norm, starter_name, "
            "message_count, participant_count, created_at, last_activity, featured, "
            "subject_orphan) "
            f"VALUES (1, 1, 's', 's', 'a', 1, 1, '{now}', '{now}', false, false)",
            "INSERT INTO messages (id, list_id, message_id, message_id_generated, thread_id, "
            "parent_pos, raw_id, subject, subject_norm, from_name, from_addr, date, date_offset, "
            'date_header, received_at, in_reply_to, "references", body_text, body_html, '
            "is_flowed, status, origin, defects) "
            "VALUES (1, 1, 'p@x', false, 1, 0, 1, 's', 's', 'a', 'a@example.org', "
            f"'{now}', 0, '', '{now}', '', '', 'hi', '', false, 'visible', 'smtp', '')",
            "INSERT INTO deliveries (id, message_pk, address, subscription_id, status, attempts, "
            "last_error, created_at) "
            f"VALUES (1, 1, 'bob@example.org', 1, 'sent', 1, '', '{now}')",
            "INSERT INTO bounces (id, delivery_id, subscription_id, address, kind, diagnostic, "
            "received_at) "
            f"VALUES (1, 1, 1, 'bob@example.org', 'transient', '', '{now}')",
            "INSERT INTO outbox (id, kind, ref_id, payload, created_at, attempts) "
            f"VALUES (1, 'listgate.fanout', 1, '{{}}', '{now}', 0)",
        ):
            conn.execute(
                text(sql.replace("false", "0") if engine.dialect.name == "sqlite" else sql)
            )
        if engine.dialect.name == "postgresql":  # explicit ids do not move the sequences on
            for table in (
                "lists",
                "subscriptions",
                "raw_messages",
                "threads",
                "messages",
                "deliveries",
                "bounces",
                "outbox",
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )


def _upgrade_and_live(engine: Engine) -> None:
    _history_at_0003(engine)
    upgrade(engine)
    assert current(engine) == head() and (head() or "") >= "0007"
    db = session_factory(writer(engine))
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        sub = session.get_one(Subscription, 1)
        assert (sub.status, sub.ended_at, sub.end_reason, sub.approved_by) == (
            "active",
            None,
            "",
            "",
        )
        subscriptions.change(session, mlist, "bob@example.org", subscriptions.LEAVE, channel="link")
        lists.subscribe(session, mlist, "bob@example.org")
        weekly = subscription_of(
            subscriptions.change(
                session,
                mlist,
                "bob@example.org",
                subscriptions.DIGEST,
                channel="mail",
                frequency="weekly",
            )
        )
        assert (weekly.kind, weekly.digest_frequency, weekly.status) == (
            "digest",
            "weekly",
            "active",
        )
        subscriptions.change(session, mlist, "bob@example.org", subscriptions.LEAVE, channel="mail")
    with db() as session:
        sub = session.get_one(Subscription, 1)
        assert (sub.status, sub.end_reason, sub.digest_frequency) == (
            "ended",
            "switched to the digest",
            "daily",
        )
        assert session.get_one(Subscription, weekly.id).end_reason == "left (mail)"
        assert session.scalar(select(Delivery.subscription_id)) == 1
    assert differences(engine) == []


def test_upgrade_keeps_history_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(make_settings(tmp_path))
    try:
        _upgrade_and_live(engine)
    finally:
        engine.dispose()


def test_upgrade_keeps_history_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    engine = make_engine(
        make_settings(tmp_path, LISTGATE_DATABASE_URL=new_database(postgres_url, migrated=False))
    )
    try:
        _upgrade_and_live(engine)
    finally:
        engine.dispose()
