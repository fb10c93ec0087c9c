"""A map of who talks to whom: the thread graph,
list activity and correspondents, drawn and as JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate.ingest import IngestResult
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import sign_in

DAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def talk(make_list: MakeList, db: sessionmaker[Session]) -> IngestResult:
    """Ann starts; Ben replies twice to Ann, Ann once
    to Ben, Cy once to Ben, Ann answers herself.
    """
    make_list("dev")
    root = post(db, make_mail("Design", msgid="t0@x", sender="Ann <ann@example.org>", date=DAY))
    steps = [
        ("t1@x", "t0@x", "Ben <ben@example.org>"),
        ("t2@x", "t1@x", "Ann <ann@example.org>"),
        ("t3@x", "t2@x", "Ben <ben@example.org>"),
        ("t4@x", "t3@x", "Cy <cy@example.org>"),
        ("t5@x", "t0@x", "Ann <ann@example.org>"),
    ]
    for i, (msgid, parent, sender) in enumerate(steps, 1):
        post(
            db,
            make_mail(
                "Re: Design",
                msgid=msgid,
                in_reply_to=parent,
                sender=sender,
                date=DAY + timedelta(hours=i),
            ),
        )
    post(
        db,
        make_mail(
            "Other", msgid="o0@x", sender="Cy <cy@example.org>", date=DAY + timedelta(days=8)
        ),
    )
    return root


def test_thread_graph_json_counts_posts_and_replies_each_way_without_addresses(
    client: FlaskClient, talk: IngestResult
) -> None:
    data = client.get(f"/api/threads/{talk.thread_id}/graph").get_json()
    assert [(p["name"], p["posts"]) for p in data["people"]] == [("Ann", 3), ("Ben", 2), ("Cy", 1)]
    edges = {
        (data["people"][e["source"]]["name"], data["people"][e["target"]]["name"]): e
        for e in data["edges"]
    }
    assert edges[("Ann", "Ben")]["replies"] == 3  # Ben→Ann twice, Ann→Ben once; Ann→Ann not counted
    assert (
        edges[("Ann", "Ben")]["source_to_target"],
        edges[("Ann", "Ben")]["target_to_source"],
    ) == (1, 2)
    assert edges[("Ben", "Cy")]["replies"] == 1 and len(edges) == 2
    assert "example.org" not in str(data)


def test_thread_map_page_has_an_svg_and_a_table_for_screen_readers(
    client: FlaskClient, talk: IngestResult
) -> None:
    page = client.get(f"/threads/{talk.thread_id}/map").get_data(as_text=True)
    assert (
        '<svg xmlns="http://www.w3.org/2000/svg"' in page
        and page.count("<circle") == 3
        and page.count("<line") == 2
    )
    assert "<script" not in page and 'aria-labelledby="graph-title graph-desc"' in page
    assert "<td>Ann and Ben</td><td>3</td>" in page
    assert f'href="/threads/{talk.thread_id}/map">Who talks to whom</a>' in client.get(
        f"/threads/{talk.thread_id}"
    ).get_data(as_text=True)


def test_list_activity_counts_posts_and_new_threads_per_week_and_the_months_tops(
    client: FlaskClient, talk: IngestResult
) -> None:
    data = client.get("/api/lists/dev/activity").get_json()
    weeks = {w["week"]: (w["posts"], w["new_threads"]) for w in data["weeks"]}
    assert len(data["weeks"]) == 52
    assert weeks["2026-03-02"] == (6, 1) and weeks["2026-03-09"] == (1, 1)
    assert data["month"] == "2026-03"
    assert [(t["subject"], t["posts"]) for t in data["top_threads"]] == [
        ("Design", 6),
        ("Other", 1),
    ]
    assert [(p["name"], p["posts"]) for p in data["top_people"]][:2] == [("Ann", 3), ("Ben", 2)]
    page = client.get("/lists/dev/activity").get_data(as_text=True)
    assert (
        'aria-labelledby="act-title act-desc"' in page and "Most active threads, March 2026" in page
    )


def test_author_page_lists_frequent_correspondents(client: FlaskClient, talk: IngestResult) -> None:
    page = client.get(f"/lists/dev/authors/{talk.message_pk}").get_data(as_text=True)
    row = page.split("Talks most with", 1)[1]
    assert "Ben</a></td><td>1</td><td>2</td>" in row  # Ann replied to Ben once, Ben to Ann twice
    assert "Cy" not in row.split("</table>", 1)[0]


def test_maps_of_private_lists_are_not_found_for_outsiders(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("hush", private=True)
    res = post(db, make_mail("Secret", msgid="s@x", to="hush@lists.test"), list_name="hush")
    for path in (
        f"/threads/{res.thread_id}/map",
        f"/api/threads/{res.thread_id}/graph",
        "/lists/hush/activity",
        "/api/lists/hush/activity",
    ):
        assert client.get(path).status_code == 404, path
    assert client.get("/api/lists/hush/activity").get_json()["status"] == 404


def test_signed_in_readers_see_full_names(
    client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    res = post(db, make_mail("Hi", msgid="h@x", sender='"dora@example.org" <dora@example.org>'))
    assert (
        client.get(f"/api/threads/{res.thread_id}/graph").get_json()["people"][0]["name"]
        == "dora@…"
    )
    sign_in(client, db, "me@example.org")
    assert (
        client.get(f"/api/threads/{res.thread_id}/graph").get_json()["people"][0]["name"]
        == "dora@example.org"
    )
