"""Subscriptions on the web: mute from a thread page, approvals and the not-posted queue for
moderators, counts in words, limits on confirmation mail, and error pages that say what happened."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from listgate import confirmations, lists, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.models import MailingList, Message, NotPosted, Subscription
from tests.support.config import search
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import RecordingSender, csrf, notices, sign_in


@pytest.fixture
def topic(make_list: MakeList, db: sessionmaker[Session]) -> IngestResult:
    make_list("dev")
    return post(db, make_mail("Topic", msgid="t@x", body="First post.\n"))


def _states(db: sessionmaker[Session], address: str) -> dict[str, str]:
    with db() as session:
        return {
            s.kind: s.status
            for s in session.scalars(select(Subscription).where(Subscription.address == address))
        }


def test_a_member_mutes_and_unmutes_a_thread_from_its_page(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, topic: IngestResult
) -> None:
    with transaction(db) as session:
        lists.subscribe(session, lists.require(session, "dev"), "bob@example.org")
    sign_in(client, db, "bob@example.org")
    path = f"/threads/{topic.thread_id}"
    assert "Mute this thread" in client.get(path).get_data(as_text=True)
    page = client.post(
        f"{path}/mute", data={"csrf_token": csrf(client, path)}, follow_redirects=True
    )
    assert "You muted this thread" in page.get_data(as_text=True)
    assert _states(db, "bob@example.org") == {"list": "active", "mute": "active"}
    page = client.post(
        f"{path}/unmute", data={"csrf_token": csrf(client, path)}, follow_redirects=True
    )
    assert "Mute this thread" in page.get_data(as_text=True)
    assert _states(db, "bob@example.org") == {"list": "active", "mute": "ended"}
    assert notices(db, "changed") == []  # the page says it; no mail for a web action


def test_list_page_counts_in_words(
    client: FlaskClient, db: sessionmaker[Session], topic: IngestResult
) -> None:
    assert "1 post in 1 thread" in client.get("/lists/dev/").get_data(as_text=True)
    post(db, make_mail("Re: Topic", in_reply_to="t@x"))
    assert "2 posts in 1 thread" in client.get("/lists/dev/").get_data(as_text=True)


def test_confirmation_mail_to_one_address_is_limited_like_sign_in(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    sender: RecordingSender,
    make_list: MakeList,
) -> None:
    make_list("dev")
    threads = [post(db, make_mail(f"Topic {n}")).thread_id for n in range(7)]
    answers = []
    for thread_id in threads:
        token = csrf(client, f"/threads/{thread_id}")
        answers.append(
            client.post(
                f"/threads/{thread_id}/follow",
                data={"csrf_token": token, "address": "victim@example.org"},
            )
        )
    assert [r.status_code for r in answers].count(303) == confirmations.CONFIRM_LIMIT[0]
    refused = answers[-1]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many confirmation mails" in refused.get_data(as_text=True)
    assert len(notices(db, "confirm")) == confirmations.CONFIRM_LIMIT[0]


def test_a_members_list_waits_for_a_moderator_who_approves_on_the_moderation_page(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, make_list: MakeList
) -> None:
    make_list("club", policy="members", moderators="mod@example.org")
    make_list("secret", private=True, moderators="mod@example.org")
    sign_in(client, db, "new@example.org")
    page = client.post(
        "/lists/club/subscribe",
        data={"csrf_token": csrf(client, "/"), "kind": "list"},
        follow_redirects=True,
    )
    assert "must approve your subscription" in page.get_data(as_text=True)
    assert _states(db, "new@example.org") == {"list": "awaiting"}
    # A private list's page, and so its form, is not even there for an outsider.
    assert (
        client.post(
            "/lists/secret/subscribe", data={"csrf_token": csrf(client, "/"), "kind": "list"}
        ).status_code
        == 404
    )
    client.post("/signout", data={"csrf_token": csrf(client, "/")})
    sign_in(client, db, "mod@example.org")
    queue = client.get("/moderation").get_data(as_text=True)
    assert "new@example.org asks for every post of club" in queue
    action = search(r'action="(/moderation/subscriptions/\d+/approve)"', queue)
    client.post(action, data={"csrf_token": csrf(client, "/moderation")})
    assert _states(db, "new@example.org") == {"list": "active"}
    assert [n["to"] for n in notices(db, "welcome")] == ["new@example.org"]


def test_a_moderator_refuses_a_request_with_a_reason(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, make_list: MakeList
) -> None:
    make_list("club", policy="members", moderators="mod@example.org")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "club"), "x@example.org", "digest")
    sign_in(client, db, "mod@example.org")
    action = search(
        r'action="(/moderation/subscriptions/\d+/refuse)"',
        client.get("/moderation").get_data(as_text=True),
    )
    client.post(
        action,
        data={"csrf_token": csrf(client, "/moderation"), "reason": "members of the club only"},
    )
    assert _states(db, "x@example.org") == {"digest": "ended"}
    assert notices(db, "refused")[0]["reason"] == "members of the club only"
    again = client.post(action, data={"csrf_token": csrf(client, "/moderation")})
    assert again.status_code == 409 and "has no request waiting" in again.get_data(as_text=True)


def test_the_not_posted_queue_is_shown_to_moderators_and_released_as_a_post(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, make_list: MakeList
) -> None:
    make_list("dev", moderators="mod@example.org")
    kept = post(
        db, make_mail("Out of office", msgid="ooo@x", headers={"Auto-Submitted": "auto-replied"})
    )
    assert kept.status == "dropped"
    sign_in(client, db, "mod@example.org")
    queue = client.get("/moderation").get_data(as_text=True)
    assert "Out of office" in queue and "Auto-Submitted: auto-replied" in queue
    action = search(r'action="(/moderation/not-posted/\d+/release)"', queue)
    client.post(action, data={"csrf_token": csrf(client, "/moderation")})
    with db() as session:
        assert session.scalars(select(Message.message_id)).all() == ["ooo@x"]
        assert session.scalars(select(NotPosted.released_by)).all() == ["mod@example.org"]
        assert session.scalars(select(MailingList.thread_count)).all() == [1]
    assert sender.names[-1:] == ["listgate.fanout"]
    assert "Nothing was kept back" in client.get("/moderation").get_data(as_text=True)


def test_an_integrity_error_is_a_500_with_a_reference_in_the_page_and_the_log(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    make_list: MakeList,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_list("dev")

    def broken() -> str:
        with transaction(app.extensions["listgate"].writer) as session:
            session.add(MailingList(name="dev"))  # the name is taken: a real IntegrityError
        return "unreachable"

    app.add_url_rule("/broken", "broken", broken)
    with caplog.at_level(logging.ERROR, logger="webarchive.errors"):
        page = client.get("/broken")
    body = page.get_data(as_text=True)
    reference = search(r"give them the reference ([0-9a-f]{8})", body)
    assert page.status_code == 500 and "Retry-After" not in page.headers and "Traceback" not in body
    record = next(r for r in caplog.records if reference in r.getMessage())
    assert record.exc_info and "IntegrityError" in repr(record.exc_info[1])


def test_a_lock_timeout_is_a_503_with_retry_after(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    make_list: MakeList,
    settings: Settings,
) -> None:
    make_list("dev")
    url = settings.database_url
    holder = create_engine(url)
    conn = holder.connect()
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # another process holds the write lock

    def write() -> str:
        impatient = create_engine(url, connect_args={"timeout": 0.2})
        try:
            with impatient.begin() as c:
                c.execute(text("UPDATE lists SET title = 'x'"))
        finally:
            impatient.dispose()
        return "unreachable"

    app.add_url_rule("/api/write", "write", write)
    try:
        answer = client.get("/api/write")
    finally:
        conn.rollback()
        conn.close()
        holder.dispose()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert "unavailable" in answer.get_json()["error"]


def test_the_anonymous_form_and_follow_button_on_a_members_list_also_wait(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, make_list: MakeList
) -> None:
    make_list("club", policy="members", moderators="mod@example.org")
    thread_id = post(
        db, make_mail("Members talk", sender="mod@example.org"), list_name="club"
    ).thread_id
    client.post(
        "/lists/club/subscribe",
        data={"csrf_token": csrf(client, "/lists/club/"), "address": "a@example.org"},
    )
    client.post(
        f"/threads/{thread_id}/follow",
        data={"csrf_token": csrf(client, f"/threads/{thread_id}"), "address": "b@example.org"},
    )
    for payload in notices(db, "confirm"):
        path = payload["link"].split("://", 1)[1].split("/", 1)[1]
        assert "Press the button to confirm" in client.get("/" + path).get_data(as_text=True)
        done = client.post("/" + path).get_data(as_text=True)
        assert "must approve your subscription" in done
    assert _states(db, "a@example.org") == {"list": "awaiting"} and _states(
        db, "b@example.org"
    ) == {"thread": "awaiting"}
    assert [n["to"] for n in notices(db, "awaiting")] == ["a@example.org", "b@example.org"]
    assert notices(db, "welcome") == []


def test_a_confirmed_outsider_still_cannot_read_a_private_list(
    client: FlaskClient, db: sessionmaker[Session], sender: RecordingSender, make_list: MakeList
) -> None:
    """Issue 17.9: secret+subscribe@, confirm, sign
    in, read. Now the request waits for a moderator.
    """
    make_list("secret", private=True, moderators="mod@example.org")
    post(db, make_mail("Secret plans", sender="mod@example.org"), list_name="secret")
    with transaction(db) as session:
        outcome = confirmations.request(
            session,
            lists.require(session, "secret"),
            "spy@example.org",
            secret="test-secret-key-0123456789",
            base_url="https://lists.test",
            domain="lists.test",
            channel=subscriptions.MAIL,
        )
        reply_to = json.loads(outcome.outbox[0].payload)["reply_to"]
        confirmations.confirm_by_code(
            session,
            "test-secret-key-0123456789",
            lists.require(session, "secret"),
            reply_to.split("+confirm-")[1].split("@")[0],
        )
    sign_in(client, db, "spy@example.org")
    assert client.get("/lists/secret/").status_code == 404
    assert "Secret plans" not in client.get("/").get_data(as_text=True)
