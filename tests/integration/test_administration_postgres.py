"""Administration on PostgreSQL: the migration, a
purge that empties the tsvector, deleting a list (with posts hidden and put back).
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, lists, removal, reports
from listgate.db import transaction
from listgate.models import Message, RawMessage
from tests.support.factories import make_mail, post

pytestmark = pytest.mark.integration


@pytest.fixture
def pg(
    pg_web: tuple[Flask, sessionmaker[Session]],
) -> tuple[Flask, sessionmaker[Session]]:
    with transaction(pg_web[1]) as session:
        lists.create(session, "dev", owners="o@example.org")
    return pg_web


def test_a_purged_post_leaves_the_search_index_and_the_tombstone_stays(
    pg: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg
    root = post(db, make_mail("Harbour plans", msgid="r@x", body="The harbour opens in spring.\n"))
    post(
        db,
        make_mail(
            "Re: Harbour plans",
            msgid="c@x",
            in_reply_to="r@x",
            body="Gossip about zanzibarquokka.\n",
            attachments=[("leak.txt", "text/plain", b"secret")],
        ),
    )
    client = app.test_client()
    assert "Re: Harbour plans" in client.get("/search?q=zanzibarquokka").get_data(as_text=True)
    with transaction(db) as session:
        removal.remove(
            session, removal.find(session, "c@x"), "court order", "o@example.org", purge=True
        )
    with db() as session:
        vector = session.execute(
            text("SELECT search_vector::text FROM messages WHERE message_id = 'c@x'")
        ).scalar()
        assert "zanzibarquokka" not in (vector or "")
        raw_id = session.scalars(select(Message.raw_id).where(Message.message_id == "c@x")).one()
        assert session.get_one(RawMessage, raw_id).data == b""
    results = client.get("/search?q=zanzibarquokka").get_data(as_text=True)
    assert "No posts match" in results and "Re: Harbour plans" not in results
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert "removed by the moderators on" in page and "court order" in page


def test_deleting_a_list_with_purge_on_postgres(pg: tuple[Flask, sessionmaker[Session]]) -> None:
    _, db = pg
    post(db, make_mail("One", msgid="1@x"))
    post(db, make_mail("Re: One", msgid="2@x", in_reply_to="1@x"))
    post(db, make_mail("Re: One", msgid="3@x", in_reply_to="1@x"))
    with transaction(db) as session:  # readers' reports hid two posts, one was put back
        for msgid in ("2@x", "3@x"):
            reports.hide(session, removal.find(session, msgid)[0])
        reports.restore(session, removal.find(session, "3@x")[0])
    with transaction(db) as session, pytest.raises(lists.ListError, match="--purge"):
        administration.delete_list(session, lists.require(session, "dev"), "o@example.org")
    with transaction(db) as session:
        administration.delete_list(
            session, lists.require(session, "dev"), "o@example.org", purge=True
        )
    with db() as session:
        assert lists.get(session, "dev") is None
        assert session.scalar(select(func.count()).select_from(Message)) == 0
