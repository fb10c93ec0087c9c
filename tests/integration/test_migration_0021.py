"""Migration 0021 (bounces.digest_id, subscriptions.suspended_at) on SQLite and PostgreSQL: a
digest reported failing with a 4xx before the upgrade, then with the 5xx that gave up after it,
counts as one hard bounce (0.5, then 0.5 more: 1), and a repeat of the 5xx adds nothing; a
subscriber suspended before the upgrade was suspended at the last bounce counted; down drops the
columns and keeps every bounce and subscription; a second round does the same."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, text

from listgate import lists
from listgate.db import session_factory, transaction, writer
from listgate.models import Bounce, DigestSent, Subscription
from listgate.schema import current, head, upgrade
from listgate.states import BounceKind, DigestState, SubscriptionKind, SubscriptionState
from tests.support.config import make_settings
from tests.support.migrations import ENGINES, as_now, before, blank_engine, downgrade, rows_but
from worker import bounces

pytestmark = pytest.mark.integration

engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)
JOINED, SENT = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 0, 10, tzinfo=UTC)
BOUNCED = datetime(2026, 11, 20, 8, tzinfo=UTC)
PAT, SAM = "pat@example.org", "sam@example.org"


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("bounces")}


def _score(engine: Engine) -> float:
    with engine.connect() as conn:
        return float(
            conn.execute(
                text("SELECT bounce_score FROM subscriptions WHERE address = :a"), {"a": PAT}
            ).scalar_one()
        )


def _suspended_at(engine: Engine) -> list[tuple[str, datetime | None]] | None:
    if "suspended_at" not in {c["name"] for c in inspect(engine).get_columns("subscriptions")}:
        return None
    with session_factory(engine)() as s:
        rows = s.execute(select(Subscription.address, Subscription.suspended_at).order_by("id"))
        return [(a, t) for a, t in rows]


def _reported_again(engine: Engine, tmp_path: Path) -> None:
    """The relay's 5xx about the digest that went out (worker.bounces' one way of counting)."""
    db = session_factory(writer(engine))
    with transaction(db) as s:
        copy = bounces.copy_named(s, "g", s.scalars(select(DigestSent.id)).one())
        bounces.counted(s, make_settings(tmp_path), copy, BounceKind.PERMANENT, "550 5.1.1")


def test_0021_counts_a_digest_reported_across_the_upgrade_once(
    engine: Engine, tmp_path: Path
) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        mlist = lists.create(s, "dev")
        s.add(
            Subscription(
                list_id=mlist.id,
                address=PAT,
                kind=SubscriptionKind.DIGEST,
                status=SubscriptionState.ACTIVE,
                confirmed_at=JOINED,
            )
        )
        s.add(
            Subscription(
                list_id=mlist.id,
                address=SAM,
                kind=SubscriptionKind.LIST,
                status=SubscriptionState.SUSPENDED,
                confirmed_at=JOINED,
                bounce_score=2.0,
                last_bounce_at=BOUNCED,
            )
        )
        s.add(DigestSent(list_id=mlist.id, address=PAT, day=date(2026, 11, 29), sent_at=SENT))
        s.flush()
        s.execute(text("UPDATE digests_sent SET status = :s"), {"s": DigestState.SENT.value})
    previous = before("0021")
    downgrade(engine, previous)
    # the site before the upgrade records a 4xx about the digest as it did: a bounce row that
    # names no copy, the kind in the digest's last error, half a bounce in the score
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO bounces (subscription_id, address, kind, diagnostic, received_at)"
                " VALUES (1, :a, 'transient', '452 4.2.2', :t)"
            ),
            {"a": PAT, "t": SENT},
        )
        conn.execute(text("UPDATE digests_sent SET last_error = 'transient: 452 4.2.2'"))
        conn.execute(
            text("UPDATE subscriptions SET bounce_score = 0.5 WHERE address = :a"), {"a": PAT}
        )
    kept = rows_but(engine, "bounces", "digest_id")
    upgrade(engine)
    assert current(engine) == head() and "digest_id" in _columns(engine)
    assert _suspended_at(engine) == [(PAT, None), (SAM, BOUNCED)], (
        "suspended before the upgrade: at the last bounce counted"
    )
    for times in range(2):
        _reported_again(engine, tmp_path)
        assert _score(engine) == 1.0, (
            f"the 5xx about a digest whose 4xx counted before the upgrade (report {times + 1})"
        )
    with session_factory(engine)() as s:
        assert [b.digest_id for b in s.scalars(select(Bounce).order_by(Bounce.id))] == [
            None,
            1,
            1,
        ]
    everything = rows_but(engine, "bounces", "digest_id")
    subs = rows_but(engine, "subscriptions", "suspended_at")
    assert everything[:1] == as_now(engine, "bounces", kept)
    for _ in range(2):
        downgrade(engine, previous)
        assert current(engine) == previous and "digest_id" not in _columns(engine)
        assert _suspended_at(engine) is None
        assert rows_but(engine, "bounces", "") == everything
        assert rows_but(engine, "subscriptions", "") == subs
        upgrade(engine)
        assert current(engine) == head() and "digest_id" in _columns(engine)
        assert _suspended_at(engine) == [(PAT, None), (SAM, BOUNCED)]
        assert rows_but(engine, "bounces", "digest_id") == everything
        assert rows_but(engine, "subscriptions", "suspended_at") == subs
