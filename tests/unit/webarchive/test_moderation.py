"""Moderators work through held and reported posts, feature threads and ban addresses."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate.ingest import IngestResult
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import RecordingSender, csrf, notices, sign_in


@pytest.fixture
def moderated(
    sender: RecordingSender, make_list: MakeList, db: sessionmaker[Session]
) -> IngestResult:
    make_list("dev", policy="moderated", moderators="mod@example.org")
    held = post(db, make_mail("Please approve", msgid="h@x", sender="Newbie <new@example.org>"))
    assert held.status == "held"
    return held


def test_non_moderators_do_not_see_the_queue(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult
) -> None:
    assert client.get("/moderation").status_code == 404
    sign_in(client, db, "someone@example.org")
    assert client.get("/moderation").status_code == 404


def test_approving_a_held_post_publishes_it(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult
) -> None:
    sign_in(client, db, "mod@example.org")
    queue = client.get("/moderation").get_data(as_text=True)
    assert "Please approve" in queue and "new@example.org" in queue
    token = csrf(client, "/moderation")
    client.post(f"/moderation/messages/{moderated.message_pk}/approve", data={"csrf_token": token})
    assert client.get(f"/threads/{moderated.thread_id}").status_code == 200
    assert "Nothing is waiting" in client.get("/moderation").get_data(as_text=True)


def test_rejecting_mails_the_reason_to_the_author(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult
) -> None:
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    client.post(
        f"/moderation/messages/{moderated.message_pk}/reject",
        data={"csrf_token": token, "reason": "Off topic"},
    )
    payload = notices(db, "rejected")[-1]
    assert payload == {
        **payload,
        "to": "new@example.org",
        "reason": "Off topic",
        "subject": "Please approve",
    }
    assert client.get(f"/threads/{moderated.thread_id}").status_code == 404


def test_feature_pins_a_thread_on_top(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult, make_list: MakeList
) -> None:
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    client.post(f"/moderation/messages/{moderated.message_pk}/approve", data={"csrf_token": token})
    post(db, make_mail("Newer", msgid="n@x", sender="mod@example.org"))
    client.post(
        f"/threads/{moderated.thread_id}/feature", data={"csrf_token": token, "featured": "yes"}
    )
    page = client.get("/lists/dev/").get_data(as_text=True)
    page = page[page.index('<ul class="threads"') :]
    assert (
        page.index("This is a featured thread") < page.index("Please approve") < page.index("Newer")
    )


def test_a_banned_address_cannot_post_from_the_web(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult, make_list: MakeList
) -> None:
    make_list("open", moderators="mod@example.org")
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    client.post(
        "/moderation/lists/2/bans", data={"csrf_token": token, "address": "troll@example.org"}
    )
    assert "troll@example.org on open" in client.get("/moderation").get_data(as_text=True)
    sign_in(client, db, "troll@example.org")
    token = csrf(client, "/lists/open/new")
    response = client.post(
        "/lists/open/new", data={"csrf_token": token, "subject": "Hi", "body": "x"}
    )
    assert response.status_code == 403


def test_reported_posts_reach_the_queue_with_reasons(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult
) -> None:
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    client.post(f"/moderation/messages/{moderated.message_pk}/approve", data={"csrf_token": token})
    sign_in(client, db, "reader@example.org")
    token = csrf(client, f"/messages/{moderated.message_pk}/report")
    client.post(
        f"/messages/{moderated.message_pk}/report",
        data={"csrf_token": token, "reason": "Looks like spam"},
    )
    sign_in(client, db, "mod@example.org")
    queue = client.get("/moderation").get_data(as_text=True)
    assert "Looks like spam" in queue and "1 report" in queue


def test_list_counts_follow_what_is_published(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult
) -> None:
    """Held and rejected posts are no threads; hiding a
    thread's only post takes the thread off the count.
    """
    from listgate import lists

    def counts() -> tuple[int, int]:
        with db() as session:
            mlist = lists.require(session, "dev")
            return mlist.thread_count, mlist.message_count

    assert counts() == (0, 0)
    assert "0 posts in 0 threads" in client.get("/lists/dev/").get_data(as_text=True)
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    client.post(f"/moderation/messages/{moderated.message_pk}/approve", data={"csrf_token": token})
    assert counts() == (1, 1)
    assert "1 post in 1 thread" in client.get("/lists/dev/").get_data(as_text=True)
    client.post(
        f"/moderation/messages/{moderated.message_pk}/reject",
        data={"csrf_token": token, "reason": "spam"},
    )
    assert counts() == (0, 0)
    held = post(db, make_mail("Another", msgid="h2@x", sender="Newbie <new@example.org>"))
    client.post(
        f"/moderation/messages/{held.message_pk}/reject", data={"csrf_token": token, "reason": "no"}
    )
    assert counts() == (0, 0)


def test_rejecting_a_post_already_published_leaves_its_place_in_the_thread(
    client: FlaskClient, db: sessionmaker[Session], moderated: IngestResult
) -> None:
    """A reported post, published and answered, then rejected: its tombstone keeps its place
    (the replies stay where they were) and its author is told why; pressing reject again, or
    publish on an older page, changes nothing."""
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    client.post(f"/moderation/messages/{moderated.message_pk}/approve", data={"csrf_token": token})
    reply = post(
        db,
        make_mail("Re: Please approve", msgid="r@x", in_reply_to="h@x", sender="bob@example.org"),
    )
    assert (reply.status, reply.thread_id) == ("held", moderated.thread_id)
    client.post(f"/moderation/messages/{reply.message_pk}/approve", data={"csrf_token": token})
    sign_in(client, db, "reader@example.org")
    token = csrf(client, f"/messages/{moderated.message_pk}/report")
    client.post(
        f"/messages/{moderated.message_pk}/report", data={"csrf_token": token, "reason": "spam"}
    )
    sign_in(client, db, "mod@example.org")
    token = csrf(client, "/moderation")
    for _ in range(2):
        client.post(
            f"/moderation/messages/{moderated.message_pk}/reject",
            data={"csrf_token": token, "reason": "Selling things"},
        )
    assert [n["to"] for n in notices(db, "rejected")] == ["new@example.org"]
    page = client.get(f"/threads/{moderated.thread_id}").get_data(as_text=True)
    assert "removed by the moderators on" in page and "Selling things" in page
    assert f'id="m{reply.message_pk}"' in page  # the answer stays
    assert f'id="m{moderated.message_pk}"' in page  # the old link to it still lands on its place
    done = client.post(
        f"/moderation/messages/{moderated.message_pk}/approve", data={"csrf_token": token}
    )
    assert client.get(f"/api/messages/{moderated.message_pk}").status_code == 404
    assert "Selling things" in client.get(f"/threads/{moderated.thread_id}").get_data(as_text=True)
    assert done.status_code == 303
