"""Confirm and unsubscribe links in a browser or mail
client: GET shows, POST acts, bad links explain.
"""

from __future__ import annotations

import json
import time

import itsdangerous.timed
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import confirmations, lists, subscriptions, tokens
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import OutboxEntry, Subscription

pytestmark = pytest.mark.integration


@pytest.fixture
def list_token(settings: Settings, db: sessionmaker[Session]) -> str:
    with transaction(db) as session:
        mlist = lists.create(session, "dev")
        lists.subscribe(session, mlist, "ann@example.org")
        return subscriptions.unsubscribe_token(settings.secret_key, mlist.id, "ann@example.org")


def _subscribed(db: sessionmaker[Session]) -> list[str]:
    with db() as session:
        return list(
            session.scalars(
                select(Subscription.address).where(
                    Subscription.kind == "list", Subscription.status == "active"
                )
            )
        )


def test_get_shows_a_button_and_does_not_unsubscribe(
    client: FlaskClient, db: sessionmaker[Session], list_token: str
) -> None:
    page = client.get(f"/unsubscribe/{list_token}")
    assert page.status_code == 200
    assert b'<form method="post"' in page.data and b"ann@example.org" in page.data
    assert _subscribed(db) == ["ann@example.org"]


def test_one_click_post_unsubscribes_without_csrf_token(
    client: FlaskClient, db: sessionmaker[Session], list_token: str
) -> None:
    resp = client.post(f"/unsubscribe/{list_token}", data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200
    assert _subscribed(db) == []
    with db() as session:
        goodbye = [json.loads(e.payload) for e in session.scalars(select(OutboxEntry))]
    assert [p["template"] for p in goodbye] == ["goodbye"]


def test_forged_token_is_refused_with_a_clear_page(
    client: FlaskClient, db: sessionmaker[Session], list_token: str
) -> None:
    forged = list_token[:-3] + ("AAA" if not list_token.endswith("AAA") else "BBB")
    for method in (client.get, client.post):
        resp = method(f"/unsubscribe/{forged}")
        assert resp.status_code == 400
        assert b"cannot be used" in resp.data and b"not valid" in resp.data
    assert _subscribed(db) == ["ann@example.org"]


def test_expired_confirm_link_is_refused(
    client: FlaskClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() - 30 * 86400)
    token = tokens.make(settings.secret_key, tokens.CONFIRM, {"s": 1, "a": "x@example.org"})
    monkeypatch.setattr(itsdangerous.timed.time, "time", real)
    for method in (client.get, client.post):
        resp = method(f"/confirm/{token}")
        assert resp.status_code == 400 and b"expired" in resp.data


def test_confirm_link_get_shows_button_post_confirms(
    client: FlaskClient, settings: Settings, db: sessionmaker[Session]
) -> None:
    with transaction(db) as session:
        mlist = lists.create(session, "dev")
        outcome = confirmations.request(
            session,
            mlist,
            "new@example.org",
            secret=settings.secret_key,
            base_url=settings.base_url,
            domain=settings.domain,
        )
        link = json.loads(outcome.outbox[0].payload)["link"]
    path = link[len(settings.base_url) :]
    assert client.get(path).status_code == 200
    with db() as session:
        assert session.scalars(select(Subscription.status)).one() == "pending"
    assert client.post(path).status_code == 200
    with db() as session:
        assert session.scalars(select(Subscription.status)).one() == "active"


def test_one_click_and_the_button_work_for_someone_who_was_mailed(
    client: FlaskClient, settings: Settings, db: sessionmaker[Session]
) -> None:
    """Issue 11: once a subscriber had been sent a post, these answered 503 and nothing changed."""
    from listgate.ingest import ingest
    from listgate.mail.parser import parse
    from listgate.models import Bounce, Delivery

    with transaction(db) as session:
        mlist = lists.create(session, "dev")
        subs = [lists.subscribe(session, mlist, a) for a in ("ann@example.org", "bob@example.org")]
        result = ingest(
            session,
            parse(b"From: x@example.org\r\nMessage-ID: <p@x>\r\nSubject: s\r\n\r\nhi\r\n"),
            mlist,
            domain="lists.test",
        )
        for sub in subs:
            session.add(
                Delivery(
                    message_pk=result.message_pk,
                    address=sub.address,
                    subscription_id=sub.id,
                    status="sent",
                    attempts=1,
                    last_error="",
                )
            )
        session.add(Bounce(subscription_id=subs[1].id, address=subs[1].address, kind="transient"))
        tokens_ = [
            subscriptions.unsubscribe_token(settings.secret_key, mlist.id, s.address) for s in subs
        ]
    one_click = client.post(f"/unsubscribe/{tokens_[0]}", data={"List-Unsubscribe": "One-Click"})
    button = client.post(f"/unsubscribe/{tokens_[1]}")
    assert (one_click.status_code, button.status_code) == (200, 200)
    assert b"has left dev" in one_click.data and b"has left dev" in button.data
    assert _subscribed(db) == []
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2
