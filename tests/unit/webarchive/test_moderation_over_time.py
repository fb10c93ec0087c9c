"""Held posts decided after things changed: the author banned from the list since the post was
held. On the web queue and by the approve/reject mail addresses (mailed to the moderators before
the ban), a post of an author banned now is not published to the subscribers; it can still be
rejected, and once the ban is lifted it can be approved. A held reply approved after its thread
was merged into another shows in the merged thread, counted once."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, moderation, subscriptions
from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.models import Message, OutboxEntry, Thread
from listgate.states import PostState
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import RecordingSender, csrf, notices, sign_in

SECRET = "test-secret-key-0123456789"
MARK = "wobblewort"


def _held(db: sessionmaker[Session], make_list: MakeList) -> IngestResult:
    make_list("dev", policy="moderated", moderators="mod@example.org")
    held = post(db, make_mail("Buy now", msgid="h@x", sender="Troll <troll@example.org>"))
    assert held.status == "held"
    return held


def _ban(client: FlaskClient, db: sessionmaker[Session], address: str, action: str = "") -> None:
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    form = {"csrf_token": token, "address": address, "reason": "spam"}
    if action:
        form["action"] = action
    assert client.post("/moderation/lists/1/bans", data=form).status_code == 303


def _status(db: sessionmaker[Session], pk: int | None) -> str:
    with db() as session:
        return session.get_one(Message, pk).status


def _fanouts(db: sessionmaker[Session]) -> int:
    with db() as session:
        kinds = session.query(OutboxEntry.kind).all()
    return sum(kind == "listgate.fanout" for (kind,) in kinds)


def test_a_held_post_of_an_author_banned_since_is_not_published_from_the_queue(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList, sender: RecordingSender
) -> None:
    held = _held(db, make_list)
    _ban(client, db, "Troll@Example.org")
    token = csrf(client, "/moderation")
    answer = client.post(
        f"/moderation/messages/{held.message_pk}/approve", data={"csrf_token": token}
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409, page[:300]
    assert "troll@example.org is banned from posting to dev" in page
    assert _status(db, held.message_pk) == PostState.HELD
    assert _fanouts(db) == 0
    assert client.get(f"/threads/{held.thread_id}").status_code == 404

    # the ban lifted: the moderators may publish it after all
    _ban(client, db, "troll@example.org", action="unban")
    token = csrf(client, "/moderation")
    answer = client.post(
        f"/moderation/messages/{held.message_pk}/approve", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    assert _status(db, held.message_pk) == PostState.VISIBLE
    assert _fanouts(db) == 1


def test_a_held_post_of_an_author_banned_since_can_still_be_rejected(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList, sender: RecordingSender
) -> None:
    held = _held(db, make_list)
    _ban(client, db, "troll@example.org")
    token = csrf(client, "/moderation")
    answer = client.post(
        f"/moderation/messages/{held.message_pk}/reject",
        data={"csrf_token": token, "reason": "Spam"},
    )
    assert answer.status_code == 303
    assert _status(db, held.message_pk) == PostState.REJECTED
    assert [p["to"] for p in notices(db, "rejected")] == ["troll@example.org"]


def test_the_approve_address_mailed_before_a_ban_does_not_publish_the_post(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList, sender: RecordingSender
) -> None:
    held = _held(db, make_list)
    with db() as session:
        code = moderation.code(
            SECRET, moderation.APPROVE, session.get_one(Message, held.message_pk)
        )
    _ban(client, db, "troll@example.org")
    try:
        with transaction(db) as session:
            moderation.by_mail(
                session,
                SECRET,
                lists.require(session, "dev"),
                moderation.APPROVE,
                code,
                "mod@example.org",
                "",
            )
    except moderation.ModerationError as exc:
        said = str(exc)
    else:
        said = ""
    assert "troll@example.org is banned from posting to dev" in said
    assert _status(db, held.message_pk) == PostState.HELD
    assert _fanouts(db) == 0


def test_a_held_reply_approved_after_its_thread_was_merged_shows_in_the_merged_thread(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList, sender: RecordingSender
) -> None:
    make_list("dev", policy="members", moderators="mod@example.org")
    with transaction(db) as session:
        for who in ("alice@example.org", "bob@example.org"):
            subscriptions.start(session, lists.require(session, "dev"), who)
    a = post(db, make_mail("A", msgid="a@x.test"))
    b = post(db, make_mail("B", msgid="b@x.test", sender="bob@example.org"))
    held = post(
        db,
        make_mail(
            "Re: B",
            msgid="h@x.test",
            in_reply_to="b@x.test",
            sender="out@example.org",
            body=f"{MARK}\n",
        ),
    )
    assert held.status == "held" and held.thread_id == b.thread_id
    post(  # a reply naming both threads merges them
        db,
        make_mail(
            "Re: A", msgid="c@x.test", in_reply_to="b@x.test", references=["a@x.test", "b@x.test"]
        ),
    )
    with db() as session:
        merged = {session.get_one(Message, pk).thread_id for pk in (a.message_pk, b.message_pk)}
        assert len(merged) == 1
        survivor = merged.pop()
        before = session.get_one(Thread, survivor).message_count
        listed = lists.require(session, "dev").message_count
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    answer = client.post(
        f"/moderation/messages/{held.message_pk}/approve", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    with db() as session:
        assert session.get_one(Message, held.message_pk).thread_id == survivor
        assert session.get_one(Thread, survivor).message_count == before + 1
        assert lists.require(session, "dev").message_count == listed + 1
    for path in (f"/threads/{survivor}", f"/threads/{held.thread_id}", f"/threads/{survivor}.mbox"):
        assert MARK in client.get(path, follow_redirects=True).get_data(as_text=True), path
