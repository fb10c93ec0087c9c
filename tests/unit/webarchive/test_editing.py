"""Editing a web post: its author within the window, every
version kept, the raw bytes untouched, mail only on request.
"""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate.models import Message, OutboxEntry
from tests.support.config import search
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import RecordingSender, csrf, sign_in


def _fanouts(db: sessionmaker[Session]) -> int:
    with db() as session:
        return session.execute(
            select(func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.kind == "listgate.fanout")
        ).scalar_one()


def _write(client: FlaskClient, db: sessionmaker[Session], text: str) -> tuple[int, int]:
    token = csrf(client, "/lists/dev/new")
    done = client.post(
        "/lists/dev/new", data={"csrf_token": token, "subject": "Meeting", "body": text}
    )
    location = done.headers["Location"]
    return int(search(r"/threads/(\d+)#m(\d+)", location)), int(
        search(r"/threads/(\d+)#m(\d+)", location, 2)
    )


def test_author_edits_a_web_post_and_every_version_stays(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session], sender: RecordingSender
) -> None:
    make_list("dev")
    sign_in(client, db, "ann@example.org")
    thread_id, pk = _write(client, db, "Meet at 10.\n")
    page = client.get(f"/threads/{thread_id}").get_data(as_text=True)
    assert f'href="/messages/{pk}/edit">Edit</a>' in page and "Post edited" not in page
    before = _fanouts(db)
    token = csrf(client, f"/messages/{pk}/edit")
    assert (
        client.post(
            f"/messages/{pk}/edit", data={"csrf_token": token, "body": "Meet at 11.\n"}
        ).status_code
        == 303
    )
    page = client.get(f"/threads/{thread_id}").get_data(as_text=True)
    assert "Meet at 11." in page and "Meet at 10." not in page
    assert re.search(
        rf'<a class="edited" href="/messages/{pk}/history">Post edited <time datetime=', page
    )
    history = client.get(f"/messages/{pk}/history").get_data(as_text=True)
    assert (
        "Version 1, as first sent" in history
        and "Meet at 10." in history
        and "Version 2" in history
    )
    # the raw bytes keep the original
    assert b"Meet at 10." in client.get(f"/messages/{pk}.eml").data
    assert b"Meet at 10." in client.get(f"/threads/{thread_id}.mbox").data
    assert _fanouts(db) == before  # nobody mailed again
    # the index follows the text
    assert "Meeting" in client.get("/search?q=11").get_data(as_text=True)


def test_send_the_correction_mails_it_as_a_reply_in_the_thread(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session], sender: RecordingSender
) -> None:
    make_list("dev")
    sign_in(client, db, "ann@example.org")
    thread_id, pk = _write(client, db, "Budget: 100.\n")
    before = _fanouts(db)
    token = csrf(client, f"/messages/{pk}/edit")
    client.post(
        f"/messages/{pk}/edit",
        data={"csrf_token": token, "body": "Budget: 120.\n", "send_correction": "yes"},
    )
    assert _fanouts(db) == before + 1
    with db() as session:
        correction = session.scalars(
            select(Message).where(Message.subject == "Correction: Meeting")
        ).one()
    assert (
        correction.thread_id == thread_id
        and correction.parent_id == pk
        and "Budget: 120." in correction.body_text
    )


def test_others_cannot_edit_mail_posts_say_so_and_the_window_closes(
    app: Flask,
    client: FlaskClient,
    make_list: MakeList,
    db: sessionmaker[Session],
    sender: RecordingSender,
) -> None:
    make_list("dev")
    mailed = post(db, make_mail("By mail", msgid="bm@x", sender="Ann <ann@example.org>"))
    sign_in(client, db, "ann@example.org")
    thread_id, pk = _write(client, db, "Hello.\n")
    page = client.get(f"/threads/{mailed.thread_id}").get_data(as_text=True)
    assert "Sent by mail: not editable here" in page
    assert client.get(f"/messages/{mailed.message_pk}/edit").status_code == 403
    client.post("/signout", data={"csrf_token": csrf(client, "/")})
    sign_in(client, db, "bob@example.org")
    assert client.get(f"/messages/{pk}/edit").status_code == 403
    assert "Edit</a>" not in client.get(f"/threads/{thread_id}").get_data(as_text=True)
    client.post("/signout", data={"csrf_token": csrf(client, "/")})
    sign_in(client, db, "ann@example.org")
    res = app.extensions["listgate"]
    res.settings = res.settings.with_(edit_window_hours=0)
    refused = client.get(f"/messages/{pk}/edit")
    assert refused.status_code == 403 and "that time is over" in refused.get_data(as_text=True)


def test_an_edit_that_changes_nothing_says_so_and_mails_nobody(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session], sender: RecordingSender
) -> None:
    """Saved as it was first sent (a form opened and sent back unchanged): no version, no
    correction mail, and the page does not claim a change. The same form with a change, sent
    twice (a double click), answers both times as the first did, with one correction; an edit
    saved without its correction can have it mailed later from a form left as it is."""
    make_list("dev")
    sign_in(client, db, "ann@example.org")
    _, pk = _write(client, db, "Budget: 100.\n")
    before = _fanouts(db)

    def edit(body: str, key: str) -> str:
        token = csrf(client, f"/messages/{pk}/edit")
        form = {"csrf_token": token, "body": body, "send_correction": "yes", "key": key}
        done = client.post(f"/messages/{pk}/edit", data=form, follow_redirects=True)
        return search(r'class="flash[^"]*"[^>]*>(.*?)<', done.get_data(as_text=True))

    said = edit("Budget: 100.\n", "k" * 24)
    assert said == "Your post already reads so: nothing was changed, nobody was mailed.", said
    assert _fanouts(db) == before
    assert "Version 2" not in client.get(f"/messages/{pk}/history").get_data(as_text=True)
    for _ in range(2):
        said = edit("Budget: 120.\n", "m" * 24)
        assert said.startswith("Your post is changed, and the correction is on its way"), said
    assert _fanouts(db) == before + 1
    token = csrf(client, f"/messages/{pk}/edit")
    client.post(f"/messages/{pk}/edit", data={"csrf_token": token, "body": "Budget: 130.\n"})
    assert _fanouts(db) == before + 1
    said = edit("Budget: 130.\n", "n" * 24)  # "send the correction" ticked afterwards
    assert said.startswith("Your post is changed, and the correction is on its way"), said
    assert _fanouts(db) == before + 2
