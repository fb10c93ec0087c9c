"""Takedowns on the web: moderators, owners and site admins remove (and purge) a post through
listgate.removal, the service behind `listgate messages remove`; attacks first."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from listgate import lists
from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.models import Attachment, AuditEntry, Message, RawMessage
from tests.support.factories import MakeList, post
from tests.support.web import RecordingSender, csrf, sign_in
from tests.unit.webarchive.test_removal import SECRET_WORD, thread_of_three


@pytest.fixture
def thread(
    sender: RecordingSender, db: sessionmaker[Session], make_list: MakeList
) -> tuple[IngestResult, IngestResult, IngestResult]:
    """root <- mid (with an attachment and a secret word)
    <- leaf, on dev (moderated by mod@, owned by owner@).
    """
    root, mid, leaf = thread_of_three(
        db, lambda name: make_list(name, moderators="mod@example.org", owners="owner@example.org")
    )
    make_list("other", moderators="othermod@example.org")
    return root, mid, leaf


def status_and_raw(db: sessionmaker[Session], pk: int) -> tuple[str, bytes]:
    with db() as session:
        msg = session.get_one(Message, pk)
        return msg.status, session.get_one(RawMessage, msg.raw_id).data


def take_down(client: FlaskClient, pk: int, **form: str) -> TestResponse:
    token = csrf(client, "/moderation")
    return client.post(f"/moderation/messages/{pk}/remove", data={"csrf_token": token, **form})


def test_nobody_but_the_lists_moderators_can_take_a_post_down(
    client: FlaskClient,
    db: sessionmaker[Session],
    thread: tuple[IngestResult, IngestResult, IngestResult],
) -> None:
    root, mid, _ = thread
    assert mid.message_pk is not None
    url = f"/moderation/messages/{mid.message_pk}/remove"
    assert client.get(url).status_code == 404  # anonymous
    assert client.post(url, data={"reason": "x"}).status_code in (400, 404)
    for who in (
        "reader@example.org",
        "othermod@example.org",
    ):  # a reader; a moderator of another list
        sign_in(client, db, who)
        assert client.get(url).status_code == 404
        token = csrf(client, "/lists/dev/")
        assert (
            client.post(
                url, data={"csrf_token": token, "reason": "mine", "purge": "yes", "confirm": "yes"}
            ).status_code
            == 404
        )
        assert "Take down" not in client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    sign_in(client, db, "mod@example.org")  # the moderator, but a forged form (no CSRF token)
    assert (
        client.post(url, data={"reason": "forged", "purge": "yes", "confirm": "yes"}).status_code
        == 400
    )
    assert client.post(url, data={"csrf_token": "guessed", "reason": "forged"}).status_code == 400
    status, raw = status_and_raw(db, mid.message_pk)
    assert status == "visible" and SECRET_WORD.encode() in raw
    with db() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_a_moderator_takes_a_post_down_from_the_thread_and_the_log_says_who(
    client: FlaskClient,
    db: sessionmaker[Session],
    thread: tuple[IngestResult, IngestResult, IngestResult],
) -> None:
    root, mid, leaf = thread
    assert mid.message_pk is not None
    sign_in(client, db, "mod@example.org")
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    link = f"/moderation/messages/{mid.message_pk}/remove"
    assert link in page  # each post carries the moderator's "Take down" link
    form = client.get(link).get_data(as_text=True)
    assert "Re: Plans" in form and 'name="reason"' in form and 'name="purge"' in form
    done = take_down(client, mid.message_pk, reason="personal attack")
    assert done.status_code == 303 and done.headers["Location"].endswith(
        f"/threads/{root.thread_id}#m{mid.message_pk}"
    )
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert (
        "removed by the moderators on" in page
        and "personal attack" in page
        and SECRET_WORD not in page
    )
    assert "Showing 2 posts" in page  # the tombstone keeps its place but is not counted as a post
    assert page.index(f'id="m{mid.message_pk}"') < page.index(f'id="m{leaf.message_pk}"')
    assert client.get(f"/messages/{mid.message_pk}.eml").status_code == 404
    status, raw = status_and_raw(db, mid.message_pk)
    # removed, not purged: the bytes are kept
    assert status == "removed" and SECRET_WORD.encode() in raw
    history = client.get("/lists/dev/settings").get_data(as_text=True)
    assert re.search(
        r"mod@example\.org.*remove message.*&lt;mid@x&gt;: personal attack", history, re.DOTALL
    )


def test_purge_asks_first_then_deletes_the_raw_mail_everywhere(
    client: FlaskClient,
    db: sessionmaker[Session],
    thread: tuple[IngestResult, IngestResult, IngestResult],
) -> None:
    root, mid, _ = thread
    assert mid.message_pk is not None
    sign_in(client, db, "owner@example.org")  # owners moderate too
    assert client.get(f"/messages/{mid.message_pk}.eml").status_code == 200
    asked = take_down(client, mid.message_pk, reason="court order 7/2026", purge="yes")
    page = asked.get_data(as_text=True)
    assert (
        asked.status_code == 200
        and "Purge for good" in page
        and 'name="confirm" value="yes"' in page
    )
    assert status_and_raw(db, mid.message_pk) == (
        "visible",
        status_and_raw(db, mid.message_pk)[1],
    )  # nothing done yet
    done = take_down(
        client, mid.message_pk, reason="court order 7/2026", purge="yes", confirm="yes"
    )
    assert done.status_code == 303
    assert status_and_raw(db, mid.message_pk) == ("removed", b"")
    assert client.get(f"/messages/{mid.message_pk}.eml").status_code == 404
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 0
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert "court order 7/2026" in page and SECRET_WORD not in page
    assert client.get(f"/search?q={SECRET_WORD}").get_data(as_text=True).count("Re: Plans") == 0
    history = client.get("/lists/dev/settings").get_data(as_text=True)
    assert re.search(r"owner@example\.org.*purge message.*court order 7/2026", history, re.DOTALL)


def test_a_removed_post_can_be_purged_later_from_its_tombstone(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    thread: tuple[IngestResult, IngestResult, IngestResult],
) -> None:
    root, mid, _ = thread
    assert mid.message_pk is not None
    sign_in(client, db, "mod@example.org")
    take_down(client, mid.message_pk, reason="off topic")
    app.extensions["listgate"].settings = app.extensions["listgate"].settings.with_(
        admins=("root@example.org",)
    )
    sign_in(client, db, "root@example.org")  # a site administrator, named in no list
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert f"/moderation/messages/{mid.message_pk}/remove" in page  # the tombstone offers the purge
    form = client.get(f"/moderation/messages/{mid.message_pk}/remove").get_data(as_text=True)
    assert "off topic" in form  # the reason given at the removal, to keep or change
    take_down(client, mid.message_pk, reason="legal request", purge="yes", confirm="yes")
    assert status_and_raw(db, mid.message_pk) == ("removed", b"")
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert "legal request" in page and f"/moderation/messages/{mid.message_pk}/remove" not in page


def test_a_missing_reason_is_named_and_nothing_is_removed(
    client: FlaskClient,
    db: sessionmaker[Session],
    thread: tuple[IngestResult, IngestResult, IngestResult],
) -> None:
    _, mid, _ = thread
    assert mid.message_pk is not None
    sign_in(client, db, "mod@example.org")
    answer = take_down(client, mid.message_pk, reason="   ")
    assert answer.status_code == 303
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "give a reason" in page
    assert status_and_raw(db, mid.message_pk)[0] == "visible"


def test_purging_mail_also_archived_on_a_list_one_does_not_moderate_is_refused(
    client: FlaskClient,
    db: sessionmaker[Session],
    thread: tuple[IngestResult, IngestResult, IngestResult],
) -> None:
    _, mid, _ = thread
    assert mid.message_pk is not None
    with db() as session:
        raw = session.get_one(RawMessage, session.get_one(Message, mid.message_pk).raw_id).data
    other = post(db, raw, list_name="other")  # the same bytes, archived on a second list
    assert other.status == "stored" and other.message_pk is not None
    sign_in(client, db, "mod@example.org")
    answer = take_down(client, mid.message_pk, reason="court order", purge="yes", confirm="yes")
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "also archived on another list you do not moderate" in page and "othermod" not in page
    assert SECRET_WORD.encode() in status_and_raw(db, mid.message_pk)[1]
    assert status_and_raw(db, other.message_pk)[0] == "visible"
    with transaction(db) as session:  # once mod@ moderates both lists, one purge takes both copies
        lists.require(session, "other").moderators = "othermod@example.org,mod@example.org"
    take_down(client, mid.message_pk, reason="court order", purge="yes", confirm="yes")
    assert (
        status_and_raw(db, mid.message_pk)
        == status_and_raw(db, other.message_pk)
        == ("removed", b"")
    )


def test_a_reported_post_is_taken_down_from_the_moderation_queue(
    client: FlaskClient,
    db: sessionmaker[Session],
    thread: tuple[IngestResult, IngestResult, IngestResult],
) -> None:
    root, mid, _ = thread
    assert mid.message_pk is not None
    sign_in(client, db, "reader@example.org")
    token = csrf(client, f"/messages/{mid.message_pk}/report")
    client.post(
        f"/messages/{mid.message_pk}/report", data={"csrf_token": token, "reason": "Leaks a secret"}
    )
    sign_in(client, db, "mod@example.org")
    queue = client.get("/moderation").get_data(as_text=True)
    assert "Leaks a secret" in queue and f"/moderation/messages/{mid.message_pk}/remove" in queue
    take_down(client, mid.message_pk, reason="leaked a secret")
    # the report is dealt with
    assert "No open reports" in client.get("/moderation").get_data(as_text=True)
    assert "leaked a secret" in client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
