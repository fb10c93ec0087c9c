"""A subscriber suspended by bounces sees it on "My subscriptions" and resumes there, with the
choice they had (every post, or the digest at their frequency), from a fresh bounce score."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Subscription
from listgate.states import BounceKind, DigestFrequency, SubscriptionState
from tests.support.config import search
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import RecordingSender, csrf, sign_in
from worker import bounces

PAT = "pat@example.org"


def suspend(db: sessionmaker[Session], settings: Settings, kind: str, frequency: str) -> None:
    """Pat gets dev (every post, or the digest at frequency); her mailbox dies: suspended."""
    with transaction(db) as session:
        sub = subscriptions.start(session, lists.require(session, "dev"), PAT, kind)
        sub.digest_frequency = DigestFrequency(frequency)
        while sub.status == SubscriptionState.ACTIVE:
            bounces.score(session, settings, sub, BounceKind.PERMANENT)


@pytest.mark.parametrize(
    "kind,frequency,said",
    [
        ("list", "daily", "You now get every post from dev."),
        ("digest", "weekly", "You now get a weekly digest from dev."),
        ("digest", "daily", "You now get a daily digest from dev."),
    ],
)
def test_a_suspended_subscriber_resumes_on_my_subscriptions(
    client: FlaskClient,
    make_list: MakeList,
    db: sessionmaker[Session],
    settings: Settings,
    sender: RecordingSender,
    kind: str,
    frequency: str,
    said: str,
) -> None:
    make_list("dev")
    suspend(db, settings, kind, frequency)
    sign_in(client, db, PAT)
    page = client.get("/me/subscriptions").get_data(as_text=True)
    assert "suspended" in page and 'value="resume"' in page, page
    sub_id = search(r'action="/me/subscriptions/(\d+)"', page)
    token = csrf(client, "/me/subscriptions")
    done = client.post(
        f"/me/subscriptions/{sub_id}",
        data={"csrf_token": token, "action": "resume"},
        follow_redirects=True,
    )
    assert said in done.get_data(as_text=True)
    with db() as session:
        sub = session.scalars(select(Subscription).where(Subscription.address == PAT)).one()
        assert (sub.kind, sub.status, sub.digest_frequency, sub.bounce_score) == (
            kind,
            SubscriptionState.ACTIVE,
            frequency,
            0.0,
        )


def test_a_thread_follower_suspended_by_bounces_resumes_the_thread(
    client: FlaskClient,
    make_list: MakeList,
    db: sessionmaker[Session],
    settings: Settings,
    sender: RecordingSender,
) -> None:
    """Pat is no member; she follows one thread, and her mailbox dies: that row is suspended.
    She resumes it on My subscriptions (not the list: that is not what she had)."""
    make_list("dev")
    topic = post(db, make_mail("Topic", msgid="t@x.test"))
    assert topic.thread_id is not None
    with transaction(db) as session:
        sub = subscriptions.start(
            session, lists.require(session, "dev"), PAT, "thread", topic.thread_id
        )
        while sub.status == SubscriptionState.ACTIVE:
            bounces.score(session, settings, sub, BounceKind.PERMANENT)
    sign_in(client, db, PAT)
    page = client.get("/me/subscriptions").get_data(as_text=True)
    assert 'value="resume"' in page, page
    sub_id = search(r'action="/me/subscriptions/(\d+)"', page)
    token = csrf(client, "/me/subscriptions")
    done = client.post(
        f"/me/subscriptions/{sub_id}",
        data={"csrf_token": token, "action": "resume"},
        follow_redirects=True,
    )
    assert "You now follow this thread." in done.get_data(as_text=True)
    with db() as session:
        rows = session.execute(
            select(Subscription.kind, Subscription.status).where(Subscription.address == PAT)
        ).all()
        assert rows == [("thread", SubscriptionState.ACTIVE)]
