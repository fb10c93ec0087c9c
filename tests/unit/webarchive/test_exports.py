"""Exports and feeds: raw mail and mbox for anonymous readers of public lists (rate-limited), Atom
links, secret feed links to private lists that their reader can revoke."""

from __future__ import annotations

import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.db import transaction
from listgate.models import Message
from listgate.states import PostState
from tests.support.config import search
from tests.support.factories import BASE_DATE, MakeList, make_mail, post
from tests.support.web import csrf, sign_in
from webarchive.views import feeds


def test_anonymous_readers_download_raw_mail_and_mbox_of_public_lists_within_a_limit(
    app: Flask, client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    make_list("hush", private=True)
    res = post(db, make_mail("Open", msgid="o@x", body="public text\n"))
    hidden = post(db, make_mail("Closed", msgid="c@x", to="hush@lists.test"), list_name="hush")
    app.config["RATE_LIMITS"] = {"export": (3, 3600)}
    assert b"public text" in client.get(f"/messages/{res.message_pk}.eml").data
    assert client.get(f"/threads/{res.thread_id}.mbox").data.startswith(b"From alice@example.org ")
    assert b"Message-ID: <o@x>" in client.get("/lists/dev/2026/3.mbox").data
    refused = client.get(f"/messages/{res.message_pk}.eml")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    sign_in(client, db, "reader@example.org")  # signed-in readers are not counted per client
    assert client.get(f"/messages/{res.message_pk}.eml").status_code == 200
    assert client.get(f"/messages/{hidden.message_pk}.eml").status_code == 404


def test_atom_feeds_link_each_entry_and_the_feed_to_their_html_pages(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    res = post(db, make_mail("Feedy", msgid="f@x"))
    xml = client.get("/lists/dev/feed.atom").get_data(as_text=True)
    assert '<link rel="alternate" type="text/html" href="http://' in xml
    assert re.search(
        rf'<link rel="alternate" type="text/html" href="http://[^"]+/threads/{res.thread_id}#m{res.message_pk}"/>',
        xml,
    )
    assert re.search(
        r'<link rel="alternate" type="text/html" href="http://[^"]+/lists/dev/"/>', xml
    )
    thread_xml = client.get(f"/threads/{res.thread_id}/feed.atom").get_data(as_text=True)
    assert re.search(
        rf'<link rel="alternate" type="text/html" href="http://[^"]+/threads/{res.thread_id}"/>',
        thread_xml,
    )


def test_a_list_feed_is_subtitled_with_the_description_as_typed(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    typed = "Where the project is built.\nReleases too.\n\nBe kind. <script>alert(1)</script>"
    make_list("dev", description=typed)
    make_list("bare")
    xml = client.get("/lists/dev/feed.atom").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in xml and "<script>" not in xml
    feed = ElementTree.fromstring(xml.encode())
    # a text construct: a feed reader shows its paragraphs and line breaks as typed
    assert feed.findtext("{http://www.w3.org/2005/Atom}subtitle") == typed
    bare = ElementTree.fromstring(client.get("/lists/bare/feed.atom").get_data())
    assert bare.find("{http://www.w3.org/2005/Atom}subtitle") is None


def _secret_link(client: FlaskClient) -> str:
    page = client.get("/me/subscriptions").get_data(as_text=True)
    return search(r'hush: <a href="http://[^/]+(/feeds/[^"]+)">', page)


def test_a_private_lists_secret_feed_link_works_without_a_session_until_revoked(
    app: Flask, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    mlist = make_list("hush", private=True)
    with transaction(db) as session:
        lists.subscribe(session, session.merge(mlist), "member@example.org")
    post(db, make_mail("Inner circle", msgid="i@x", to="hush@lists.test"), list_name="hush")
    member = app.test_client()
    sign_in(member, db, "member@example.org")
    link = _secret_link(member)
    reader = app.test_client()  # a feed reader: no cookies at all
    assert reader.get("/lists/hush/feed.atom").status_code == 404
    feed = reader.get(link)
    assert feed.status_code == 200 and b"<title>Inner circle</title>" in feed.data
    assert reader.get(link.replace("/lists/hush.atom", "/lists/other.atom")).status_code == 404
    key = link.split("/")[2]
    altered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert reader.get(link.replace(key, altered)).status_code == 404
    # no address in the link
    assert reader.get(link.replace(key, "")).status_code == 404 and "member" not in link
    member.post("/me/feeds/revoke", data={"csrf_token": csrf(member, "/me/subscriptions")})
    assert reader.get(link).status_code == 404
    fresh = _secret_link(member)
    assert fresh != link and reader.get(fresh).status_code == 200


def test_a_secret_feed_link_stops_when_its_reader_leaves_the_list(
    app: Flask, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    mlist = make_list("hush", private=True)
    with transaction(db) as session:
        lists.subscribe(session, session.merge(mlist), "leaver@example.org")
    member = app.test_client()
    sign_in(member, db, "leaver@example.org")
    link = _secret_link(member)
    assert app.test_client().get(link).status_code == 200
    with transaction(db) as session:
        subscriptions.change(
            session,
            session.merge(mlist),
            "leaver@example.org",
            subscriptions.LEAVE,
            channel=subscriptions.ADMIN,
        )
    assert app.test_client().get(link).status_code == 404


def test_thread_mbox_is_oldest_first_and_its_feed_the_newest_first(
    client: FlaskClient,
    make_list: MakeList,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_list("dev")
    # Arrival order is not date order; one post is hidden by a moderator.
    minutes = {"p0": 0, "p3": 30, "p1": 10, "p2": 20, "gone": 25}
    parent = None
    for name, minute in minutes.items():
        res = post(
            db,
            make_mail(
                f"Post {name}",
                msgid=f"{name}@x",
                in_reply_to=parent,
                references=[parent] if parent else None,
                date=BASE_DATE + timedelta(minutes=minute),
            ),
        )
        parent = parent or f"{name}@x"
    with transaction(db) as session:
        session.get_one(Message, res.message_pk).status = PostState.HIDDEN
    box = client.get(f"/threads/{res.thread_id}.mbox").get_data(as_text=True)
    assert re.findall(r"^Message-ID: <(\w+)@x>", box, re.MULTILINE) == ["p0", "p1", "p2", "p3"]
    monkeypatch.setattr(feeds, "FEED_SIZE", 3)
    xml = client.get(f"/threads/{res.thread_id}/feed.atom").get_data(as_text=True)
    titles = re.findall(r"<title>Post (\w+)</title>", xml)
    assert titles == ["p0", "p3", "p2", "p1"]  # the feed's own (the thread's), then its entries


def test_a_private_lists_page_links_the_feed_a_feed_reader_can_read(
    app: Flask, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    """The Atom link on a private list's page (its link and the one feed readers discover) is the
    signed-in reader's secret link, for an owner who takes no mail too: the plain feed needs a
    session a feed reader does not have."""
    make_list("hush", private=True, owners="own@example.org")
    post(db, make_mail("Inner circle", msgid="i@x", to="hush@lists.test"), list_name="hush")
    owner = app.test_client()
    sign_in(owner, db, "own@example.org")
    page = owner.get("/lists/hush/").text
    links = re.findall(r'<a href="([^"]+)">Atom feed</a>', page) + re.findall(
        r'<link rel="alternate" type="application/atom\+xml"[^>]* href="([^"]+)"', page
    )
    assert len(links) == 2, page
    paths = [re.sub(r"^https?://[^/]+", "", link) for link in links]
    reader = app.test_client()  # a feed reader: no cookies at all
    for path in paths:
        feed = reader.get(path)
        assert feed.status_code == 200 and b"<title>Inner circle</title>" in feed.data, path
    assert set(paths) == {_secret_link(owner)}  # the one key her settings page can revoke
    owner.post("/me/feeds/revoke", data={"csrf_token": csrf(owner, "/me/subscriptions")})
    assert reader.get(paths[0]).status_code == 404


def test_a_private_threads_page_links_a_feed_a_feed_reader_can_read(
    app: Flask, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    """As the list's: the thread page's Atom links are its reader's secret link, which her
    revoking, or her leaving the list, stops."""
    mlist = make_list("hush", private=True)
    with transaction(db) as session:
        lists.subscribe(session, session.merge(mlist), "member@example.org")
    res = post(db, make_mail("Inner circle", msgid="i@x", to="hush@lists.test"), list_name="hush")
    member = app.test_client()
    sign_in(member, db, "member@example.org")
    page = member.get(f"/threads/{res.thread_id}").text
    links = re.findall(r'<a href="([^"]+)">Atom</a>', page) + re.findall(
        r'<link rel="alternate" type="application/atom\+xml"[^>]* href="([^"]+)"', page
    )
    paths = {re.sub(r"^https?://[^/]+", "", link) for link in links}
    assert len(links) == 2 and len(paths) == 1, page
    (path,) = paths
    reader = app.test_client()  # a feed reader: no cookies at all
    feed = reader.get(path)
    assert feed.status_code == 200 and b"<title>Inner circle</title>" in feed.data, path
    assert path.startswith(_secret_link(member).removesuffix("lists/hush.atom"))
    member.post("/me/feeds/revoke", data={"csrf_token": csrf(member, "/me/subscriptions")})
    assert reader.get(path).status_code == 404
    path = re.sub(
        r"^https?://[^/]+",
        "",
        re.findall(r'<a href="([^"]+)">Atom</a>', member.get(f"/threads/{res.thread_id}").text)[0],
    )
    assert reader.get(path).status_code == 200
    with transaction(db) as session:
        subscriptions.change(
            session,
            session.merge(mlist),
            "member@example.org",
            subscriptions.LEAVE,
            channel=subscriptions.ADMIN,
        )
    assert reader.get(path).status_code == 404
