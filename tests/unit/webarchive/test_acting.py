"""Signed-in readers act on the archive: sign in, vote, report, follow, reply, post."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.mail.parser import parse
from listgate.models import Message, Subscription
from listgate.states import SubscriptionState
from tests.support.config import search
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import RecordingSender, csrf, notices, sign_in


@pytest.fixture
def topic(make_list: MakeList, db: sessionmaker[Session]) -> IngestResult:
    make_list("dev")
    return post(db, make_mail("Topic", msgid="t@x.test", body="First post.\n"))


def test_sign_in_link_is_recorded_and_sent_to_the_worker(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    payload = notices(db, "signin")[-1]
    assert payload["to"] == "bob@example.org" and "/signin/" in payload["link"]
    assert ("listgate.send_notice", [1]) in [(n, a[:1]) for n, a in sender.sent] or sender.sent
    assert "Signed in as" not in client.get("/").get_data(as_text=True)
    assert "My subscriptions" in client.get("/").get_data(as_text=True)


def test_a_tampered_sign_in_link_is_refused(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    token = csrf(client)
    client.post("/signin", data={"csrf_token": token, "address": "bob@example.org"})
    link = notices(db, "signin")[-1]["link"]
    good = link.rsplit("/", 1)[1].split("?")[0]
    # one character of the signature changed; not the last: its low bits may be padding
    at = len(good) - 5
    bad = "/signin/" + good[:at] + ("A" if good[at] != "A" else "B") + good[at + 1 :]
    page = client.get(bad)
    assert page.status_code == 400 and "cannot be used" in page.get_data(as_text=True)


def test_forms_without_csrf_token_are_refused(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    response = client.post(f"/messages/{topic.message_pk}/vote", data={"valuable": "yes"})
    assert response.status_code == 400


def test_votes_are_one_per_person_and_changeable(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    token = csrf(client, f"/threads/{topic.thread_id}")
    for choice in ("yes", "yes", "no"):
        client.post(
            f"/messages/{topic.message_pk}/vote", data={"csrf_token": token, "valuable": choice}
        )
    page = client.get(f"/threads/{topic.thread_id}").get_data(as_text=True)
    assert "0 out of 1 found this valuable" in page
    client.post(f"/messages/{topic.message_pk}/vote", data={"csrf_token": token, "valuable": "yes"})
    assert "1 out of 1 found this valuable" in client.get(f"/threads/{topic.thread_id}").get_data(
        as_text=True
    )


def test_anonymous_vote_goes_to_sign_in(client: FlaskClient, topic: IngestResult) -> None:
    page = client.get(f"/threads/{topic.thread_id}").get_data(as_text=True)
    assert "out of 0" not in page and page.count("Do you find this valuable?") == 1
    assert re.search(r'href="/signin\?next=[^"]+">Yes</a>', page)


def test_reports_past_the_threshold_hide_the_post(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    sender: RecordingSender,
    topic: IngestResult,
) -> None:
    app.extensions["listgate"].settings = app.extensions["listgate"].settings.with_(
        report_threshold=2
    )
    for who in ("a@example.org", "b@example.org"):
        sign_in(client, db, who)
        token = csrf(client, f"/messages/{topic.message_pk}/report")
        client.post(
            f"/messages/{topic.message_pk}/report", data={"csrf_token": token, "reason": "spam"}
        )
    assert client.get(f"/threads/{topic.thread_id}").status_code == 404
    assert client.get("/api/messages/t%40x").status_code == 404


def test_follow_when_signed_in_is_immediate(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    token = csrf(client, f"/threads/{topic.thread_id}")
    client.post(f"/threads/{topic.thread_id}/follow", data={"csrf_token": token})
    with db() as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.address == "bob@example.org")
        ).one()
    assert (sub.kind, sub.status, sub.thread_key) == ("thread", "active", topic.thread_id)
    assert "You follow this thread by mail" in client.get(f"/threads/{topic.thread_id}").get_data(
        as_text=True
    )


def test_follow_when_anonymous_asks_for_confirmation(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    token = csrf(client, f"/threads/{topic.thread_id}")
    client.post(
        f"/threads/{topic.thread_id}/follow",
        data={"csrf_token": token, "address": "eve@example.org"},
    )
    with db() as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.address == "eve@example.org")
        ).one()
    assert sub.status == "pending"
    assert notices(db, "confirm")[-1]["to"] == "eve@example.org"


def test_my_subscriptions_switch_to_digest_and_leave(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    token = csrf(client, "/lists/dev/")
    client.post("/lists/dev/subscribe", data={"csrf_token": token, "kind": "list"})
    page = client.get("/me/subscriptions").get_data(as_text=True)
    sub_id = search(r'action="/me/subscriptions/(\d+)"', page)
    client.post(f"/me/subscriptions/{sub_id}", data={"csrf_token": token, "action": "digest"})
    assert "daily digest" in client.get("/me/subscriptions").get_data(as_text=True)
    page = client.get("/me/subscriptions").get_data(as_text=True)
    sub_id = search(r'action="/me/subscriptions/(\d+)"', page)
    client.post(f"/me/subscriptions/{sub_id}", data={"csrf_token": token, "action": "leave"})
    assert "You get no mail" in client.get("/me/subscriptions").get_data(as_text=True)


def test_web_reply_is_a_real_threaded_mail_through_ingest(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    form = client.get(f"/messages/{topic.message_pk}/reply").get_data(as_text=True)
    assert 'value="Re: Topic"' in form and "&gt; First post." in form
    token = csrf(client, f"/messages/{topic.message_pk}/reply")
    done = client.post(
        f"/messages/{topic.message_pk}/reply",
        data={"csrf_token": token, "subject": "Re: Topic", "body": "Agreed, ship it.\n"},
    )
    assert done.status_code == 303 and f"/threads/{topic.thread_id}#m" in done.location
    with db() as session:
        msg = session.scalars(select(Message).where(Message.origin == "web")).one()
        parsed = parse(msg.raw.data)
    assert parsed.from_addr == "bob@example.org" and parsed.in_reply_to == ("t@x.test",)
    assert parsed.references == ("t@x.test",) and parsed.message_id.endswith("@lists.test")
    assert msg.thread_id == topic.thread_id
    assert ("listgate.fanout", [msg.id]) in [(n, a[1:]) for n, a in sender.sent]
    assert "Agreed, ship it." in client.get(f"/threads/{topic.thread_id}").get_data(as_text=True)


def test_new_thread_from_the_web(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    token = csrf(client, "/lists/dev/new")
    done = client.post(
        "/lists/dev/new",
        data={"csrf_token": token, "subject": "Fresh idea", "body": "Hear me out.\n"},
    )
    assert done.status_code == 303
    listing = client.get("/api/lists/dev/threads").get_json()["threads"]
    assert listing[0]["subject"] == "Fresh idea"


def test_web_posts_are_rate_limited(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    sender: RecordingSender,
    topic: IngestResult,
) -> None:
    app.config["RATE_LIMITS"] = {"post": (2, 3600)}
    sign_in(client, db, "bob@example.org")
    token = csrf(client, "/lists/dev/new")
    codes = [
        client.post(
            "/lists/dev/new", data={"csrf_token": token, "subject": f"S{i}", "body": "x"}
        ).status_code
        for i in range(3)
    ]
    assert codes == [303, 303, 429]


def test_sign_in_requests_are_rate_limited(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    sender: RecordingSender,
    topic: IngestResult,
) -> None:
    app.config["RATE_LIMITS"] = {"signin-address": (2, 900)}
    token = csrf(client)
    codes = [
        client.post("/signin", data={"csrf_token": token, "address": "bob@example.org"}).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    assert len(notices(db, "signin")) == 2


def test_private_list_pages_open_for_members(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session], sender: RecordingSender
) -> None:
    make_list("secret", private=True)
    res = post(db, make_mail("Hush", msgid="p@x.test", to="secret@lists.test"), list_name="secret")
    with transaction(db) as session:
        lists.subscribe(session, lists.require(session, "secret"), "member@example.org")
    sign_in(client, db, "member@example.org")
    assert "Hush" in client.get(f"/threads/{res.thread_id}").get_data(as_text=True)
    sign_in(client, db, "stranger@example.org")
    assert client.get(f"/threads/{res.thread_id}").status_code == 404


def test_a_member_suspended_by_bounces_still_reads_the_private_list(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session], sender: RecordingSender
) -> None:
    """Bounces stop a member's mail, not their membership: their mailbox full for a week, they
    still read the private archive, and start their mail again there."""
    make_list("secret", private=True)
    res = post(db, make_mail("Hush", msgid="p@x.test", to="secret@lists.test"), list_name="secret")
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "secret"), "member@example.org")
        sub.status = SubscriptionState.SUSPENDED
    sign_in(client, db, "member@example.org")
    assert "Hush" in client.get(f"/threads/{res.thread_id}").get_data(as_text=True)
    page = client.get("/lists/secret/").get_data(as_text=True)
    assert "Hush" in page and "Get this list by mail" in page
    token = csrf(client, "/lists/secret/")
    client.post("/lists/secret/subscribe", data={"csrf_token": token, "kind": "list"})
    with db() as session:
        assert session.scalar(select(Subscription.status)) == SubscriptionState.ACTIVE


def test_a_sign_in_link_works_once(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    sign_in(client, db, "bob@example.org")
    link = notices(db, "signin")[-1]["link"]
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    other = client.application.test_client()
    page = other.get(path).get_data(as_text=True)
    token = search(r'name="csrf_token" value="([^"]+)"', page)
    again = other.post(path.split("?")[0], data={"csrf_token": token})
    assert again.status_code == 400 and "already used" in again.get_data(as_text=True)
