"""The people who run a list keep reading it after it was made private.

An owner (and a site administrator) may moderate a list without being subscribed to it. While
the list is public they read it like everyone; once it is made private, the queue still shows
them its held posts, so the archive must still show them the list, its threads and its posts,
with the Take down form under each: else a post they published is a 404 for them.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, lists
from listgate.db import transaction
from tests.support.factories import MakeList, make_mail, post, stored_pk
from tests.support.web import RecordingSender, csrf, sign_in

MARK = "wobblewort"  # in the posts' subjects and text: where it shows, they do


def _made_private(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        administration.edit(session, lists.require(session, "dev"), "cli:root", private=True)


def test_an_owner_reads_the_list_made_private_and_the_post_she_approved(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList, sender: RecordingSender
) -> None:
    make_list("dev", policy="moderated", owners="own@example.org")
    first = post(db, make_mail(f"Welcome {MARK}", msgid="w@x.test", body=f"{MARK} one\n"))
    sign_in(client, db, "own@example.org")
    token = csrf(client, "/moderation")
    assert (
        client.post(
            f"/moderation/messages/{stored_pk(first)}/approve", data={"csrf_token": token}
        ).status_code
        == 303
    )
    assert MARK in client.get(f"/threads/{first.thread_id}").get_data(as_text=True)

    _made_private(db)
    held = post(db, make_mail(f"Second {MARK}", msgid="s@x.test", body=f"{MARK} two\n"))
    queue = client.get("/moderation").get_data(as_text=True)
    assert "Second" in queue, "the owner no longer sees the held post"
    token = csrf(client, "/moderation")
    assert (
        client.post(
            f"/moderation/messages/{stored_pk(held)}/approve", data={"csrf_token": token}
        ).status_code
        == 303
    )

    for path in (
        "/lists/dev/",
        f"/threads/{held.thread_id}",
        f"/messages/{stored_pk(held)}",
        "/lists/dev/feed.atom",
        f"/search?q={MARK}",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code} for the list's owner"
        assert MARK in answer.get_data(as_text=True), path
    page = client.get(f"/threads/{first.thread_id}").get_data(as_text=True)
    assert f"/moderation/messages/{stored_pk(first)}/remove" in page  # its Take down form

    # the secret feed link the owner is given, read by a feed reader that cannot sign in
    feed = re.search(r'value="https?://[^/"]+(/feeds/[^"]+)"', client.get("/me/subscriptions").text)
    assert feed is not None, "the owner is given no feed link of the private list"
    client.post("/signout", data={"csrf_token": csrf(client, "/")})
    assert client.get(f"/threads/{held.thread_id}").status_code == 404  # strangers: nothing
    answer = client.get(feed.group(1))
    assert answer.status_code == 200 and MARK in answer.text, f"secret feed: {answer.status_code}"
