"""A person's own subscriptions are found by address, on SQLite and PostgreSQL.

/me/subscriptions asks for every subscription of the signed-in address: with no index starting
with the address it read every subscription of the site for each view (SQLite: SCAN
subscriptions; PostgreSQL: Seq Scan), however few the person has. The other statements about
one person (which private lists they may read, whether they are an active member when a mail
command asks to follow a thread, leaving by mail) must probe by the address too, not walk every
active member of the list by (list, kind, status), as SQLite without statistics chose to.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.db import transaction
from listgate.models import Subscription
from listgate.states import SubscriptionKind, SubscriptionState
from tests.support.factories import make_mail, post
from tests.support.web import session_for

pytestmark = pytest.mark.integration

ME = "me@example.org"
OTHERS = 2500  # other subscribers of each of two lists: enough rows that walking them all shows
PAGES = ("/me/subscriptions", "/", "/lists/hush/")


def _site(db: sessionmaker[Session]) -> None:
    """Two lists (one private) with many subscribers; ME on both, following a thread, one ended."""
    with transaction(db) as session:
        dev = lists.create(session, "dev")
        hush = lists.create(session, "hush", private=True)
        ids = (dev.id, hush.id)
    topic = post(db, make_mail("Topic", msgid="topic@x", sender=f"Me <{ME}>"))
    with transaction(db) as session:
        session.execute(
            insert(Subscription),
            [
                {
                    "list_id": list_id,
                    "address": f"u{n}@example.org",
                    "kind": SubscriptionKind.LIST,
                    "status": SubscriptionState.ENDED if n % 7 == 0 else SubscriptionState.ACTIVE,
                }
                for list_id in ids
                for n in range(OTHERS)
            ],
        )
        for mlist in (dev, hush):
            lists.subscribe(session, session.merge(mlist), ME)
        lists.subscribe(
            session, session.merge(dev), ME, SubscriptionKind.THREAD, topic.thread_id or 0
        )


def _statements(app: Flask, db: sessionmaker[Session]) -> list[tuple[str, Any]]:
    """The statements reading subscriptions that ME's views of PAGES run, and the worker's
    "follow" and "unsubscribe" mail commands from ME (has_active, change), with their values."""
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if "FROM subscriptions" in statement or "JOIN subscriptions" in statement:
            seen.append((statement, params))

    client = app.test_client()
    session_for(client, ME)
    event.listen(Engine, "before_cursor_execute", grab)  # the app's engine and db's
    try:
        for page in PAGES:
            assert client.get(page).status_code == 200, page
        with transaction(db) as session:
            dev = lists.require(session, "dev")
            assert subscriptions.has_active(session, dev, ME)
            left = subscriptions.change(
                session, dev, ME, subscriptions.LEAVE, channel=subscriptions.MAIL
            )
            assert left.outbox, left  # the goodbye mail
    finally:
        event.remove(Engine, "before_cursor_execute", grab)
    assert any("FROM subscriptions JOIN lists" in s for s, _ in seen), seen  # the page's own
    return seen


@pytest.fixture
def sqlite_site(app: Flask, db: sessionmaker[Session]) -> Flask:
    """The web archive on a SQLite site of _site()."""
    _site(db)
    return app


def test_my_subscriptions_are_found_by_address_on_sqlite(
    sqlite_site: Flask, db: sessionmaker[Session]
) -> None:
    engine = sqlite_site.extensions["listgate"].engine
    statements = _statements(sqlite_site, db)
    with engine.connect() as conn:
        for statement, params in statements:
            plan = [
                row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            ]
            reads = [step for step in plan if step.split()[1:2] == ["subscriptions"]]
            assert reads, (_short(statement), plan)
            for step in reads:
                assert step.startswith("SEARCH") and "address=?" in step, (_short(statement), plan)


def test_my_subscriptions_are_found_by_address_on_postgresql(
    pg_web: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_web
    _site(db)
    engine = app.extensions["listgate"].engine
    with engine.begin() as conn:
        conn.execute(text("ANALYZE subscriptions"))
    statements = _statements(app, db)
    with engine.connect() as conn:
        for statement, params in statements:
            found = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params).scalar()
            plan = json.loads(found) if isinstance(found, str) else found
            reads = _reads_of_subscriptions(plan[0]["Plan"])
            assert reads, (_short(statement), plan)
            for read in reads:
                assert "address" in read["cond"], (_short(statement), read)


def _short(statement: str) -> str:
    """The statement from its FROM on (its column list is long and says nothing here)."""
    return " ".join(statement.split()).partition(" FROM ")[2]


def _reads_of_subscriptions(node: dict[str, Any]) -> list[dict[str, str]]:
    """Each read of the subscriptions table in the plan, with the index condition it reads by."""

    def index_conds(n: dict[str, Any]) -> str:
        own = n.get("Index Cond", "")
        return " ".join([own, *(index_conds(child) for child in n.get("Plans", []))]).strip()

    found = []
    if node.get("Relation Name") == "subscriptions":
        found.append({"type": node["Node Type"], "cond": index_conds(node)})
    for child in node.get("Plans", []):
        found.extend(_reads_of_subscriptions(child))
    return found
