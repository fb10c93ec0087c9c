"""Every channel of the archive after the archive changed, each read once before the change (so
whatever a process remembers was made from the old state): a removed post leaves pages, feeds,
search, its search feed, mbox and .eml exports, the API and the list's activity; a list made
private shows nothing of its posts to anonymous readers on any of them."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, lists, removal
from listgate.db import transaction
from listgate.models import Message
from tests.support.factories import MakeList, make_mail, post

WORD = "zebrafish"  # searched for
MARK = "wobblewort"  # in the text, never in a query: where it shows, the post does


def _channels(thread_id: int, message_pk: int, msgid: str) -> dict[str, str]:
    """name -> path of every channel that can show a post."""
    return {
        "list page": "/lists/dev/",
        "month page": "/lists/dev/2026/03",
        "thread page": f"/threads/{thread_id}",
        "message page": f"/messages/{message_pk}",
        "list feed": "/lists/dev/feed.atom",
        "thread feed": f"/threads/{thread_id}/feed.atom",
        "search": f"/search?q={WORD}",
        "search feed": f"/search/feed?q={WORD}",
        "thread mbox": f"/threads/{thread_id}.mbox",
        "month mbox": "/lists/dev/2026/03.mbox",
        "eml": f"/messages/{message_pk}.eml",
        "api lists": "/api/lists",
        "api threads": "/api/lists/dev/threads",
        "api thread": f"/api/threads/{thread_id}",
        "api message": f"/api/messages/{msgid}",
        "activity": "/lists/dev/activity",
        "activity json": "/api/lists/dev/activity",
        "thread map": f"/threads/{thread_id}/map",
        "thread graph": f"/api/threads/{thread_id}/graph",
        "author page": f"/lists/dev/authors/{message_pk}",
    }


def _read(client: FlaskClient, paths: dict[str, str]) -> dict[str, tuple[int, str]]:
    return {
        name: (r.status_code, r.get_data(as_text=True))
        for name, path in paths.items()
        for r in [client.get(path)]
    }


def test_a_removed_post_leaves_every_channel(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    post(db, make_mail("Fish talk", msgid="a@x", body="Plain words.\n"))
    gone = post(
        db,
        make_mail(
            "Re: Fish talk",
            msgid="b@x",
            in_reply_to="a@x",
            sender="Quentin Quux <quentin@example.org>",
            body=f"The {WORD} {MARK}.\n",
        ),
    )
    assert gone.message_pk is not None and gone.thread_id is not None
    paths = _channels(gone.thread_id, gone.message_pk, "b@x")
    before = _read(client, paths)
    for name in ("thread feed", "search", "thread mbox", "activity json", "thread graph"):
        assert before[name][0] == 200 and (
            "Quentin" in before[name][1] or MARK in before[name][1]
        ), name
    with transaction(db) as session:
        removal.remove(
            session, [session.get_one(Message, gone.message_pk)], "spam", "mod@example.org"
        )
    after = _read(client, paths)
    shown = {
        name: status
        for name, (status, body) in after.items()
        if status == 200 and (MARK in body or "Quentin" in body)
    }
    assert shown == {}, f"the removed post is still served by {sorted(shown)}"
    for name in ("message page", "eml", "api message", "author page"):
        assert after[name][0] == 404, name
    assert after["thread page"][0] == 200  # the thread stays, the post a tombstone


def test_a_list_made_private_shows_anonymous_readers_nothing_on_any_channel(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    res = post(db, make_mail("Fish talk", msgid="a@x", body=f"The {WORD} {MARK}.\n"))
    assert res.message_pk is not None and res.thread_id is not None
    paths = _channels(res.thread_id, res.message_pk, "a@x")
    before = _read(client, paths)
    assert all(status == 200 for status, _ in before.values()), {
        n: s for n, (s, _) in before.items() if s != 200
    }
    for name in ("list feed", "search", "search feed", "month mbox", "eml", "api message"):
        assert MARK in before[name][1], name  # the channel showed the post
    with transaction(db) as session:
        administration.edit(session, lists.require(session, "dev"), "owner", private=True)
    after = _read(client, paths)
    leaks = {
        name: status
        for name, (status, body) in after.items()
        if status == 200 and (MARK in body or "Fish talk" in body or '"dev"' in body)
    }
    assert leaks == {}, f"a private list's post is still served by {sorted(leaks)}"
