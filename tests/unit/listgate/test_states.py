"""The state words: every state or vocabulary column is typed with its enum, stores the plain
word, refuses others.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import Base, transaction
from listgate.models import Delivery, Subscription
from listgate.states import (
    BounceKind,
    DeliveryState,
    DigestFormat,
    DigestFrequency,
    DigestState,
    DmarcMode,
    ListPolicy,
    PostOrigin,
    PostState,
    ReplyTo,
    ReportState,
    SpoolState,
    SubscriptionKind,
    SubscriptionState,
)
from tests.support.factories import MakeList
from tests.support.states import enum_of, foreign_words, state_columns

MIGRATIONS = Path(__file__).resolve().parents[3] / "listgate" / "migrations" / "versions"
TYPED = {
    "deliveries.status": DeliveryState,
    "digests_sent.status": DigestState,
    "subscriptions.status": SubscriptionState,
    "messages.status": PostState,
    "reports.status": ReportState,
    "spool.state": SpoolState,
    "bounces.kind": BounceKind,
    "messages.origin": PostOrigin,
    "subscriptions.kind": SubscriptionKind,
    "subscriptions.digest_frequency": DigestFrequency,
    "digests_sent.frequency": DigestFrequency,
    "people.digest_format": DigestFormat,
    "lists.policy": ListPolicy,
    "lists.reply_to": ReplyTo,
    "lists.dmarc_mode": DmarcMode,
}


def test_every_status_and_state_column_is_typed_with_its_enum() -> None:
    typed = {f"{c.table.name}.{c.name}": enum_of(c) for c in state_columns()}
    assert typed == TYPED
    named = {
        f"{t.name}.{c.name}"
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if c.name in ("status", "state")
    }
    assert named <= set(typed), f"a state column stores free text: {sorted(named - set(typed))}"


def test_a_state_is_stored_as_its_plain_word_and_read_back_as_the_member(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), "ann@example.org")
        sub_id = sub.id
    with db() as session:
        raw = session.execute(
            text("SELECT status FROM subscriptions WHERE id = :id"), {"id": sub_id}
        ).scalar_one()
        assert type(raw) is str and raw == "active"
        status = session.get_one(Subscription, sub_id).status
        assert status is SubscriptionState.ACTIVE
        assert f"{status}" == "active" and foreign_words(session) == {}


def test_a_row_written_as_a_plain_word_reads_as_the_member(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    """Databases written before the enums hold the same words: they read as members, unchanged."""
    make_list("dev")
    with transaction(db) as session:
        sub_id = lists.subscribe(session, lists.require(session, "dev"), "ann@example.org").id
        session.execute(
            text("UPDATE subscriptions SET status = 'suspended' WHERE id = :id"), {"id": sub_id}
        )
    with db() as session:
        assert session.get_one(Subscription, sub_id).status is SubscriptionState.SUSPENDED


def test_a_word_that_is_no_state_is_refused_and_nothing_is_stored(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    with transaction(db) as session:
        sub_id = lists.subscribe(session, lists.require(session, "dev"), "ann@example.org").id
    with (
        pytest.raises(
            StatementError, match="'confirmed' is not a SubscriptionState: one of pending, awaiting"
        ),
        transaction(db) as session,
    ):
        session.get_one(Subscription, sub_id).status = "confirmed"  # type: ignore[assignment]  # no such state, on purpose
    with (
        pytest.raises(StatementError, match="'queued' is not a DeliveryState"),
        transaction(db) as session,
    ):
        session.execute(update(Delivery).where(Delivery.id > 0).values(status="queued"))
    with (
        pytest.raises(StatementError, match="'pending ' is not a SubscriptionState"),
        db() as session,
    ):
        session.scalars(select(Subscription).where(Subscription.status == "pending ")).all()
    with db() as session:
        assert session.get_one(Subscription, sub_id).status is SubscriptionState.ACTIVE
        assert foreign_words(session) == {}


def test_a_foreign_word_in_the_database_is_named(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    with transaction(db) as session:
        sub_id = lists.subscribe(session, lists.require(session, "dev"), "ann@example.org").id
        session.execute(
            text("UPDATE subscriptions SET status = 'new' WHERE id = :id"), {"id": sub_id}
        )
    with db() as session:
        assert foreign_words(session) == {"subscriptions.status": {"new"}}
        with pytest.raises(
            ValueError, match="the database holds 'new', which is not a SubscriptionState"
        ):
            session.get_one(Subscription, sub_id)


def _migration_words() -> dict[str, set[str]]:
    """The words the migrations' SQL compares state
    columns to or writes into them, by "table.column".
    """
    found: dict[str, set[str]] = {}
    columns = {c.name for c in state_columns()}
    for path in sorted(MIGRATIONS.glob("*.py")):
        for sql in re.findall(
            r'"((?:UPDATE|DELETE FROM|INSERT INTO|SELECT)[^"]*)"', path.read_text()
        ):
            table = re.search(r"(?:UPDATE|FROM|INTO)\s+(\w+)", sql)
            for column, value in re.findall(r"\b(\w+)\s*(?:=|IN|<>|!=)\s*(\([^)]*\)|'[^']*')", sql):
                if table is not None and column in columns:
                    found.setdefault(f"{table.group(1)}.{column}", set()).update(
                        re.findall(r"'([^']*)'", value)
                    )
    return found


def test_the_words_the_migrations_write_are_states() -> None:
    words = _migration_words()
    assert words, "no state word found in the migrations: the scan is broken"
    for column, seen in words.items():
        assert column in TYPED, f"a migration writes {column}, which is no state column"
        assert seen <= {m.value for m in TYPED[column]}, (
            f"{column}: {sorted(seen - set(TYPED[column]))}"
        )
