"""The web archive on PostgreSQL: the same pages and API, search through tsvector + GIN."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from tests.support.factories import make_mail, post
from tests.support.web import session_for

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_app(
    pg_web: tuple[Flask, sessionmaker[Session]],
) -> tuple[Flask, sessionmaker[Session]]:
    with transaction(pg_web[1]) as session:
        lists.create(session, "dev")
        lists.create(session, "secret", private=True)
    return pg_web


def test_search_uses_the_tsvector_index_and_highlights(
    pg_app: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_app
    post(
        db,
        make_mail(
            "Memory leak in parser",
            msgid="a@x",
            body="The parser leaks memory when given huge headers.\n",
        ),
    )
    post(db, make_mail("Other", msgid="b@x", body="Nothing here.\n"))
    post(
        db,
        make_mail("Leak", msgid="s@x", to="secret@lists.test", body="leaks too\n"),
        list_name="secret",
    )
    with db() as session:
        indexes = session.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_search_vector'")
        ).scalar()
    assert indexes and "gin" in indexes.lower()
    page = app.test_client().get("/search?q=leaking+memory").get_data(as_text=True)
    assert "Memory leak in parser" in page and "<mark>" in page
    assert ">Leak<" not in page
    feed = app.test_client().get("/search/feed?q=parser")
    assert b"Memory leak in parser" in feed.data


def test_api_and_thread_page_on_postgres(pg_app: tuple[Flask, sessionmaker[Session]]) -> None:
    app, db = pg_app
    root = post(db, make_mail("Root", msgid="r@x"))
    post(db, make_mail("Re: Root", msgid="c@x", in_reply_to="r@x"))
    client = app.test_client()
    data = client.get(f"/api/threads/{root.thread_id}").get_json()
    assert [m["parent_message_id"] for m in data["messages"]] == [None, "r@x"]
    threads = client.get("/api/lists/dev/threads?limit=1").get_json()
    assert threads["threads"][0]["id"] == root.thread_id and threads["next"] is None
    assert "Showing 2 posts" in client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert "2026-03" in client.get("/lists/dev/months").get_data(as_text=True)
    assert client.get("/api/lists/secret/threads").status_code == 404


def test_votes_and_rate_limits_upsert_on_postgres(
    pg_app: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_app
    res = post(db, make_mail("Vote", msgid="v@x"))
    client = app.test_client()
    session_for(client, "bob@example.org", "tok")
    for choice in ("yes", "no", "yes"):
        response = client.post(
            f"/messages/{res.message_pk}/vote", data={"csrf_token": "tok", "valuable": choice}
        )
        assert response.status_code == 303
    assert "1 out of 1 found this valuable" in client.get(f"/threads/{res.thread_id}").get_data(
        as_text=True
    )
