"""A subscriber suspended by bounces comes back after the list changed: since they joined, the
list became private (or members-only). Their membership was never taken away (a bounce stops the
mail, not the membership; the members of that day kept theirs), so asking again by mail and
confirming makes them active again, with no moderator's approval; a newcomer still waits."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, confirmations, lists, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Subscription
from listgate.states import BounceKind, DigestFrequency, SubscriptionKind, SubscriptionState
from tests.support.factories import MakeList, subscription_of
from worker import bounces

SECRET = "test-secret-key-0123456789"


def _ask_and_confirm(db: sessionmaker[Session], address: str) -> tuple[str, str]:
    """address writes NAME+subscribe@ and answers the confirmation: what it is told, its status."""
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        outcome = confirmations.request(
            session,
            mlist,
            address,
            secret=SECRET,
            base_url="http://archive.test",
            domain="lists.test",
            channel=subscriptions.MAIL,
        )
        code = confirmations.confirm_code(SECRET, subscription_of(outcome))
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        done = confirmations.confirm_by_code(session, SECRET, mlist, code)
        return done.message, subscription_of(done).status


@pytest.mark.parametrize("change", [{"private": True}, {"policy": "members"}])
def test_a_member_suspended_after_the_list_closed_comes_back_without_a_moderator(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings, change: dict
) -> None:
    make_list("dev", moderators="mod@example.org")
    with transaction(db) as session:
        pat = subscriptions.start(session, lists.require(session, "dev"), "pat@example.org").id
    with transaction(db) as session:
        administration.edit(session, lists.require(session, "dev"), "owner@example.org", **change)
    with transaction(db) as session:  # her mailbox is gone for a while: bounces up to the limit
        sub = session.get_one(Subscription, pat)
        while sub.status == SubscriptionState.ACTIVE:
            bounces.score(session, settings, sub, BounceKind.PERMANENT)
        assert sub.status == SubscriptionState.SUSPENDED

    said, status = _ask_and_confirm(db, "pat@example.org")
    assert (said, status) == ("Your subscription is confirmed.", SubscriptionState.ACTIVE)
    # a newcomer still needs a moderator
    said, status = _ask_and_confirm(db, "new@example.org")
    assert status == SubscriptionState.AWAITING, said


def test_a_digest_reader_suspended_by_bounces_comes_back_to_the_digest_by_mail(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """The suspension notice tells Pat to write to NAME+subscribe@: doing so brings back her
    weekly digest, as she had it, not every post of the list."""
    make_list("dev")
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        subscriptions.start(session, mlist, "pat@example.org")
        subscriptions.change(
            session,
            mlist,
            "pat@example.org",
            subscriptions.DIGEST,
            channel=subscriptions.WEB,
            frequency="weekly",
        )
    with transaction(db) as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.kind == SubscriptionKind.DIGEST)
        ).one()
        while sub.status == SubscriptionState.ACTIVE:
            bounces.score(session, settings, sub, BounceKind.PERMANENT)

    assert _ask_and_confirm(db, "pat@example.org")[1] == SubscriptionState.ACTIVE
    with db() as session:
        rows = {
            (s.kind, s.digest_frequency if s.kind == SubscriptionKind.DIGEST else None): s.status
            for s in session.scalars(select(Subscription))
        }
    assert rows == {
        (SubscriptionKind.LIST, None): SubscriptionState.ENDED,
        (SubscriptionKind.DIGEST, DigestFrequency.WEEKLY): SubscriptionState.ACTIVE,
    }, "she asked to resume: her weekly digest again, not every post"
