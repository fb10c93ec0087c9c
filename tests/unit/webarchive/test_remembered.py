"""What the web process remembers between requests never hides a change from a reader.

Each test first serves the page once (the answer is remembered), then changes the archive
through the path real mail and moderators take, then reads the page again on the same app.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from listgate.models import Message
from listgate.removal import remove
from tests.support.factories import MakeList, make_mail, post, stored_pk
from tests.support.web import session_for

MARCH = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


def _months(client: FlaskClient, name: str = "dev") -> dict[str, int]:
    """The months page as {"2026-03": posts}."""
    response = client.get(f"/lists/{name}/months")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return {m: int(n) for m, n in re.findall(r">(\d{4}-\d\d)</a> <span[^>]*>(\d+) post", page)}


def _march(db: sessionmaker[Session], count: int) -> list[int]:
    return [
        stored_pk(
            post(db, make_mail(f"March {i}", msgid=f"mar{i}@x", date=MARCH.replace(day=5 + i)))
        )
        for i in range(count)
    ]


def test_a_post_in_a_new_month_shows_at_once_on_a_warm_months_page(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    _march(db, 3)
    assert _months(client) == {"2026-03": 3}
    post(db, make_mail("April news", msgid="apr@x", date=datetime(2026, 4, 2, tzinfo=UTC)))
    assert _months(client) == {"2026-04": 1, "2026-03": 3}
    assert "April news" in client.get("/lists/dev/2026/4").get_data(as_text=True)
    # older than the list's last activity: the list's newest post does not move
    post(db, make_mail("Old news", msgid="jan@x", date=datetime(2025, 1, 9, tzinfo=UTC)))
    assert _months(client) == {"2026-04": 1, "2026-03": 3, "2025-01": 1}
    assert "Old news" in client.get("/lists/dev/2025/1").get_data(as_text=True)


def test_a_removed_post_leaves_its_months_count_on_a_warm_months_page(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    march = _march(db, 2)
    april = post(db, make_mail("April", msgid="apr@x", date=datetime(2026, 4, 2, tzinfo=UTC)))
    assert _months(client) == {"2026-04": 1, "2026-03": 2}
    with transaction(db) as session:
        remove(session, [session.get_one(Message, march[0])], "spam", "mod@example.org")
    assert _months(client) == {"2026-04": 1, "2026-03": 1}
    assert "1 post ·" in client.get("/lists/dev/2026/3").get_data(as_text=True)
    with transaction(db) as session:  # the newest post: the list's last activity stays
        remove(session, [session.get_one(Message, april.message_pk)], "spam", "mod@example.org")
    assert _months(client) == {"2026-03": 1}


def test_a_private_lists_months_never_leak_through_what_a_member_was_shown(
    app: Flask, client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("secret", private=True)
    with transaction(db) as session:
        lists.subscribe(session, lists.require(session, "secret"), "member@example.org")
    post(db, make_mail("Hush", msgid="p@x", to="secret@lists.test", date=MARCH), "secret")
    session_for(client, "member@example.org")
    assert _months(client, "secret") == {"2026-03": 1}
    anonymous, stranger = app.test_client(), app.test_client()
    session_for(stranger, "stranger@example.org")
    for outsider in (anonymous, stranger):
        response = outsider.get("/lists/secret/months")
        assert response.status_code == 404
        assert "2026-03" not in response.get_data(as_text=True)
        assert outsider.get("/lists/secret/2026/3").status_code == 404
    assert _months(client, "secret") == {"2026-03": 1}  # the member still reads it


def test_a_new_thread_shows_as_the_newer_neighbour_of_a_thread_already_shown(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    first = post(db, make_mail("First", msgid="t1@x", date=MARCH))
    second = post(db, make_mail("Second", msgid="t2@x", date=MARCH.replace(day=6)))
    page = client.get(f"/threads/{second.thread_id}").get_data(as_text=True)
    assert "Older thread: First" in page and "Newer thread" not in page
    post(db, make_mail("Third", msgid="t3@x", date=MARCH.replace(day=7)))
    page = client.get(f"/threads/{second.thread_id}").get_data(as_text=True)
    assert "Newer thread: Third" in page and "Older thread: First" in page
    with transaction(db) as session:
        remove(session, [session.get_one(Message, first.message_pk)], "spam", "mod@example.org")
    page = client.get(f"/threads/{second.thread_id}").get_data(as_text=True)
    assert "Newer thread: Third" in page and "Older thread" not in page
