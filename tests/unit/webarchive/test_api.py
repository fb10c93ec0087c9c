"""The JSON API as outside tools use it."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from tests.support.factories import MakeList, make_mail, merged_pair, post
from tests.support.web import session_for


def test_lists_show_counts_and_address(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev", title="Developers")
    post(db, make_mail("One", msgid="a@x.test"))
    post(db, make_mail("Re: One", msgid="b@x.test", in_reply_to="a@x.test"))
    data = client.get("/api/lists").get_json()
    assert data["lists"][0]["name"] == "dev"
    assert data["lists"][0]["address"] == "dev@lists.test"
    assert (data["lists"][0]["threads"], data["lists"][0]["messages"]) == (1, 2)


def test_threads_are_paged_by_cursor_newest_first(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    for i in range(5):
        post(db, make_mail(f"Topic {i}", msgid=f"t{i}@x"))
    first = client.get("/api/lists/dev/threads?limit=2").get_json()
    assert [t["subject"] for t in first["threads"]] == ["Topic 4", "Topic 3"]
    second = client.get(f"/api/lists/dev/threads?limit=2&cursor={first['next']}").get_json()
    third = client.get(f"/api/lists/dev/threads?limit=2&cursor={second['next']}").get_json()
    assert [t["subject"] for t in second["threads"] + third["threads"]] == [
        "Topic 2",
        "Topic 1",
        "Topic 0",
    ]
    assert third["next"] is None


def test_thread_order_is_depth_first_with_siblings_by_date(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    root = post(db, make_mail("Root", msgid="r@x.test"))
    post(db, make_mail("Re: Root", msgid="late@x", in_reply_to="r@x.test"))
    post(
        db,
        make_mail(
            "Re: Root", msgid="deep@x", in_reply_to="late@x", references=["r@x.test", "late@x"]
        ),
    )
    post(db, make_mail("Re: Root", msgid="later@x", in_reply_to="r@x.test"))
    data = client.get(f"/api/threads/{root.thread_id}").get_json()
    assert [(m["message_id"], m["parent_message_id"]) for m in data["messages"]] == [
        ("r@x.test", None),
        ("late@x", "r@x.test"),
        ("deep@x", "late@x"),
        ("later@x", "r@x.test"),
    ]
    assert data["list"] == "dev" and data["subject"] == "Root"


def test_parent_is_the_nearest_archived_ancestor(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    root = post(db, make_mail("Root", msgid="r@x.test"))
    post(
        db,
        make_mail(
            "Re: Root",
            msgid="c@x.test",
            in_reply_to="never-archived@x",
            references=["r@x.test", "never-archived@x"],
        ),
    )
    data = client.get(f"/api/threads/{root.thread_id}").get_json()
    assert data["messages"][1] == {
        **data["messages"][1],
        "message_id": "c@x.test",
        "parent_message_id": "r@x.test",
    }


def test_merged_thread_redirects_to_the_survivor(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    a, b = merged_pair(db)
    one = client.get(f"/api/threads/{a.thread_id}").get_json()
    other = client.get(f"/api/threads/{b.thread_id}").get_json()
    assert one["id"] == other["id"]
    assert {m["message_id"] for m in one["messages"]} == {"a@x.test", "b@x.test", "c@x.test"}
    listed = client.get("/api/lists/dev/threads").get_json()["threads"]
    assert [t["id"] for t in listed] == [one["id"]]


def test_message_by_percent_encoded_id(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    res = post(db, make_mail("Slashy", body="Body here.\n", msgid="a/b+c%d@x.example"))
    data = client.get("/api/messages/a%2Fb%2Bc%25d%40x.example").get_json()
    assert data["message_id"] == "a/b+c%d@x.example"
    assert data["thread_id"] == res.thread_id
    assert data["body_text"].strip() == "Body here."


def test_unknown_things_are_json_404(client: FlaskClient, make_list: MakeList) -> None:
    make_list("dev")
    for url in (
        "/api/lists/nope/threads",
        "/api/threads/999",
        "/api/messages/none%40x",
        "/api/whatever",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "error" in response.get_json()


def test_bad_parameters_are_json_400(client: FlaskClient, make_list: MakeList) -> None:
    make_list("dev")
    for query in ("limit=0", "limit=abc", "limit=100000", "cursor=garbage", "cursor=12_x"):
        response = client.get(f"/api/lists/dev/threads?{query}")
        assert response.status_code == 400, query
        assert "error" in response.get_json()


def test_held_only_threads_and_held_posts_are_not_shown(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("mod", policy="moderated", moderators="boss@example.org")
    held = post(db, make_mail("Spam?", msgid="h@x.test", to="mod@lists.test"), list_name="mod")
    assert held.status == "held"
    assert client.get("/api/lists/mod/threads").get_json()["threads"] == []
    assert client.get(f"/api/threads/{held.thread_id}").status_code == 404
    assert client.get("/api/messages/h%40x").status_code == 404


def test_private_list_is_invisible_to_outsiders(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("secret", private=True)
    res = post(db, make_mail("Hush", msgid="s@x.test", to="secret@lists.test"), list_name="secret")
    assert client.get("/api/lists").get_json()["lists"] == []
    for url in (
        "/api/lists/secret/threads",
        f"/api/threads/{res.thread_id}",
        "/api/messages/s%40x",
    ):
        assert client.get(url).status_code == 404, url


def test_private_list_is_visible_to_a_signed_in_member(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("secret", private=True)
    res = post(db, make_mail("Hush", msgid="s@x.test", to="secret@lists.test"), list_name="secret")
    with transaction(db) as session:
        lists.subscribe(session, lists.require(session, "secret"), "member@example.org")
    session_for(client, "member@example.org")
    assert [m["name"] for m in client.get("/api/lists").get_json()["lists"]] == ["secret"]
    assert client.get(f"/api/threads/{res.thread_id}").status_code == 200
