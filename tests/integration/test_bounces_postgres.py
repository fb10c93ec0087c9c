"""Bounces handled while the subscription changes, on PostgreSQL (a worker per core: reports are
handled at the same time as the person's own changes, and as each other).

Each test holds one transaction open (a change of Pat's subscription, or the handling of one
report), starts the handling of a report in another thread, waits until PostgreSQL says that
one waits for a lock, then commits the first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import OutboxEntry
from listgate.states import SubscriptionState
from tests.unit.worker.test_bounces import dsn
from tests.unit.worker.test_bounces_over_time import DEAD, PAT, copy_to, report, state
from worker import bounces

pytestmark = pytest.mark.integration


def _waiting(db: sessionmaker[Session], before: float) -> None:
    """Until another connection of this database waits for a lock (a minute at most)."""
    while time.monotonic() - before < 60:
        with db() as session:
            if session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ):
                return
        time.sleep(0.02)
    raise AssertionError("the report's handling never waited for the open transaction")


def _while_open(
    db: sessionmaker[Session], first: Callable[[Session], object], then: Callable[[], object]
) -> None:
    """first(session) in an open transaction; then() in a thread, until it waits; commit first."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            then()
        except BaseException as exc:  # noqa: BLE001 - shown by the test
            errors.append(exc)

    with transaction(db) as session:
        first(session)
        session.flush()
        thread = threading.Thread(target=run)
        thread.start()
        _waiting(db, time.monotonic())
    thread.join(60)
    assert not thread.is_alive() and not errors, errors


@pytest.fixture
def dev(pg_db: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(pg_db) as session:
        subscriptions.start(session, lists.create(session, "dev"), PAT)
    return pg_db


def test_a_report_handled_while_pat_leaves_does_not_suspend_her_afterwards(
    dev: sessionmaker[Session], pg_settings: Settings
) -> None:
    """Pat is one bounce from the limit and leaves; the report that would suspend her is
    handled meanwhile. She left: she stays gone, and is not told she is suspended."""
    db, settings = dev, pg_settings
    copies = [copy_to(db, settings) for _ in range(int(settings.bounce_score_limit))]
    for token in copies[:-1]:
        report(db, settings, token, dsn(PAT, "5.1.1", DEAD))
    notices: list[object] = []
    _while_open(
        db,
        lambda session: subscriptions.change(
            session, lists.require(session, "dev"), PAT, subscriptions.LEAVE, channel="web"
        ),
        lambda: notices.extend(report(db, settings, copies[-1], dsn(PAT, "5.1.1", DEAD))),
    )
    assert state(db)[0] == SubscriptionState.ENDED
    assert notices == []


def test_the_same_report_handled_twice_at_once_counts_once(
    dev: sessionmaker[Session], pg_settings: Settings
) -> None:
    """A storm of one DSN reaches two workers at the same moment."""
    db, settings = dev, pg_settings
    token = copy_to(db, settings)
    raw = dsn(PAT, "5.1.1", DEAD)
    _while_open(
        db,
        lambda session: report_in(session, settings, token, raw),
        lambda: report(db, settings, token, raw),
    )
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)


def test_reports_of_two_copies_handled_at_once_both_count(
    dev: sessionmaker[Session], pg_settings: Settings
) -> None:
    db, settings = dev, pg_settings
    first, second = copy_to(db, settings), copy_to(db, settings)
    raw = dsn(PAT, "5.1.1", DEAD)
    _while_open(
        db,
        lambda session: report_in(session, settings, first, raw),
        lambda: report(db, settings, second, raw),
    )
    assert state(db) == (SubscriptionState.ACTIVE, 2.0)


def report_in(session: Session, settings: Settings, token: str, raw: bytes) -> None:
    """A report handled in the caller's transaction (left open)."""
    bounces.handle(session, settings, OutboxEntry(payload=json.dumps({"arg": token})), raw)
