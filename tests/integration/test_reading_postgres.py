"""The reading features on PostgreSQL: read marks upserted, placeholders, votes and reports in one
query, the map's grouped queries, edits and secret feed keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from listgate.models import Message, Report
from listgate.reports import hide
from tests.support.factories import make_mail, post
from tests.support.web import session_for

pytestmark = pytest.mark.integration


def test_thread_page_map_activity_and_edits_on_postgres(
    pg_web: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_web
    with transaction(db) as session:
        lists.create(session, "dev")
        hush = lists.create(session, "hush", private=True)
        lists.subscribe(session, hush, "me@example.org")
    # The activity API's tops are about the current month: the posts are dated inside it, within
    # the last three hours, even in the first minutes of a month.
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = max(now - timedelta(hours=3), month)
    step = (now - start) / 4
    root = post(
        db,
        make_mail(
            "Root",
            msgid="root@x.test",
            sender="Ann <ann@example.org>",
            date=start,
        ),
    )
    bad = post(
        db,
        make_mail(
            "Re: Root",
            msgid="bad@x.test",
            in_reply_to="root@x.test",
            sender="Spam <s@x.example>",
            date=start + step,
        ),
    )
    post(
        db,
        make_mail(
            "Re: Root",
            msgid="cy@x.test",
            in_reply_to="bad@x.test",
            references=["root@x.test", "bad@x.test"],
            sender="Cy <cy@example.org>",
            date=start + 2 * step,
        ),
    )
    mine = post(
        db,
        make_mail(
            "Re: Root",
            msgid="mine@x.test",
            in_reply_to="root@x.test",
            sender="Me <me@example.org>",
            date=start + 3 * step,
        ),
        origin="web",
    )
    with transaction(db) as session:
        hide(session, session.get_one(Message, bad.message_pk))
        session.add(Report(message_pk=root.message_pk, list_id=1, address="z@x.example"))
    client = app.test_client()
    session_for(client, "me@example.org", "tok")
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert (
        "This post was hidden after reports" in page
        and "Reported: moderators will look at it" in page
    )
    post(
        db,
        make_mail(
            "Re: Root",
            msgid="new@x.test",
            in_reply_to="root@x.test",
            sender="Ann <ann@example.org>",
        ),
    )
    assert "1 new post since your last visit" in client.get(f"/threads/{root.thread_id}").get_data(
        as_text=True
    )
    graph = client.get(f"/api/threads/{root.thread_id}/graph").get_json()
    assert sorted(p["name"] for p in graph["people"]) == ["Ann", "Cy", "Me"]
    activity = client.get("/api/lists/dev/activity").get_json()
    # this month's top thread: not the hidden reply, nor the late post (the factory dates it March)
    assert (
        sum(w["posts"] for w in activity["weeks"]) >= 4 and activity["top_threads"][0]["posts"] == 3
    )
    assert "Talks most with" in client.get(f"/lists/dev/authors/{mine.message_pk}").get_data(
        as_text=True
    )
    done = client.post(
        f"/messages/{mine.message_pk}/edit", data={"csrf_token": "tok", "body": "Changed.\n"}
    )
    assert done.status_code == 303
    assert "Post edited" in client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    settings_page = client.get("/me/subscriptions").get_data(as_text=True)
    link = settings_page.split('hush: <a href="', 1)[1].split('"', 1)[0]
    assert app.test_client().get("/" + link.split("://", 1)[1].split("/", 1)[1]).status_code == 200
