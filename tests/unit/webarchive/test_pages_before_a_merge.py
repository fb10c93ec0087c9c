"""Forms of a thread page shown before its thread was merged into another, used after the merge.

A moderator opens a thread, a late mail merges that thread into another, then the moderator
presses the page's button: it acts on the thread the posts are in now, and what the page then
says is what the archive shows.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate.models import Message
from tests.support.factories import MakeList, make_mail, post, stored_pk
from tests.support.web import RecordingSender, csrf, sign_in

FEATURED = re.compile(r'<ul class="threads" aria-label="Featured threads">(.*?)</ul>', re.DOTALL)


def _thread_of(db: sessionmaker[Session], pk: int) -> int:
    with db() as session:
        return session.get_one(Message, pk).thread_id


def test_featuring_from_a_page_shown_before_a_merge_features_the_merged_thread(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList, sender: RecordingSender
) -> None:
    make_list("dev", moderators="mod@example.org")
    alpha = post(db, make_mail("Alpha", msgid="a@x.test"))
    post(db, make_mail("Re: Alpha", msgid="a2@x.test", in_reply_to="a@x.test"))
    beta = post(db, make_mail("Beta", msgid="b@x.test", sender="bob@example.org"))
    sign_in(client, db, "mod@example.org")
    old = beta.thread_id
    page = client.get(f"/threads/{old}").get_data(as_text=True)
    assert f'action="/threads/{old}/feature"' in page
    token = csrf(client, f"/threads/{old}")
    # the late mail: it answers Beta and names Alpha before it, so the two threads are one
    post(
        db,
        make_mail(
            "Re: Beta",
            msgid="c@x.test",
            in_reply_to="b@x.test",
            references=["a@x.test", "b@x.test"],
        ),
    )
    merged = _thread_of(db, stored_pk(alpha))
    assert _thread_of(db, stored_pk(beta)) == merged != old

    answer = client.post(
        f"/threads/{old}/feature",
        data={"csrf_token": token, "featured": "yes"},
        follow_redirects=True,
    )
    said = answer.get_data(as_text=True)
    assert "This thread is featured." in said
    assert "This is a featured thread" in said, "the page says featured, the thread is not"
    pinned = FEATURED.search(client.get("/lists/dev/").get_data(as_text=True))
    assert pinned is not None and "Alpha" in pinned.group(1), "the list pins no thread"

    # the same page's button again, now that the thread is featured: it unpins it
    answer = client.post(
        f"/threads/{old}/feature",
        data={"csrf_token": token, "featured": "no"},
        follow_redirects=True,
    )
    said = answer.get_data(as_text=True)
    assert "This thread is no longer featured." in said
    assert "This is a featured thread" not in said
    assert FEATURED.search(client.get("/lists/dev/").get_data(as_text=True)) is None
