"""Reading the archive in a browser-less client: what a reader sees on each page."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.models import Message, RawMessage
from tests.support.config import search
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import session_for


@pytest.fixture
def thread(make_list: MakeList, db: sessionmaker[Session]) -> IngestResult:
    make_list("dev", title="Developers", description="Talk about the code")
    root = post(
        db,
        make_mail(
            "Build fails",
            msgid="root@x",
            sender="Alice Example <alice@example.org>",
            body=(
                "It fails.\n\n"
                "bob@corp.example wrote:\n> old 1\n> old 2\n> old 3\n> old 4\n-- \nAlice\n"
            ),
        ),
    )
    post(
        db,
        make_mail(
            "RE: Build fails",
            msgid="r1@x",
            in_reply_to="root@x",
            sender="Bob <bob@corp.example>",
            attachments=[("log.txt", "text/plain", b"error 42\n")],
        ),
    )
    post(
        db,
        make_mail(
            "Re: Build fails",
            msgid="r2@x",
            in_reply_to="r1@x",
            references=["root@x", "r1@x"],
            sender="carol@example.net",
        ),
    )
    post(
        db,
        make_mail(
            "Re: Build fails", msgid="r3@x", in_reply_to="root@x", sender="Dan <dan@example.com>"
        ),
    )
    return root


def test_home_lists_titles_and_counts(client: FlaskClient, thread: IngestResult) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "Developers" in page and "Talk about the code" in page
    assert "4 posts in 1 thread" in page


def test_list_page_shows_threads_with_starter_and_counts(
    client: FlaskClient, thread: IngestResult
) -> None:
    page = client.get("/lists/dev/").get_data(as_text=True)
    assert "Build fails" in page and "started by Alice Example" in page
    assert "4 posts" in page and "4 participants" in page


def test_list_page_paginates_by_keyset(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    for i in range(55):
        post(db, make_mail(f"Topic {i:02d}", msgid=f"t{i}@x"))
    first = client.get("/lists/dev/").get_data(as_text=True)
    assert "Topic 54" in first and "Topic 04" not in first
    older = search(r'href="([^"]+)" rel="next"', first).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert "Topic 04" in second and "Topic 00" in second and "Topic 54" not in second


def test_thread_tree_order_depth_and_count(client: FlaskClient, thread: IngestResult) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "Showing 4 posts" in page
    ids = re.findall(r'<article class="post (d\d+)" id="m(\d+)"', page)
    assert [d for d, _ in ids] == ["d0", "d1", "d2", "d1"]


def test_flat_view_is_by_date(client: FlaskClient, thread: IngestResult) -> None:
    page = client.get(f"/threads/{thread.thread_id}?view=flat").get_data(as_text=True)
    subjects = re.findall(r'class="subject" id="s\d+">([^<]+)<', page)
    assert subjects == ["Build fails", "RE: Build fails", "Re: Build fails", "Re: Build fails"]
    assert "Show as tree" in page


def test_posts_show_name_only_and_machine_readable_dates(
    client: FlaskClient, thread: IngestResult
) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert 'by <a href="/lists/dev/authors/2">Bob</a>' in page and ">carol</a>" in page
    for address in (
        "alice@example.org",
        "bob@corp.example",
        "carol@example.net",
        "dan@example.com",
    ):
        assert address not in page
    assert '<time datetime="2026-03-01T' in page


def test_quotes_folded_and_signature_dimmed(client: FlaskClient, thread: IngestResult) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "<summary>4 quoted lines</summary>" in page
    assert '<div class="sig">-- \nAlice</div>' in page


def test_reply_by_email_link_has_in_reply_to_and_subject(
    client: FlaskClient, thread: IngestResult
) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert (
        "mailto:dev@lists.test?subject=Re%3A%20Build%20fails&amp;In-Reply-To=%3Croot%40x%3E" in page
    )


def test_attachment_is_a_download_never_rendered(client: FlaskClient, thread: IngestResult) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    url = search(r'href="(/attachments/[^"]+)"', page)
    response = client.get(url)
    assert response.data == b"error 42\n"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_raw_message_is_byte_identical(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    raw = (
        make_mail("Bytes", msgid="bytes@x").replace(b"\n", b"\r\n") + b"\r\ntrailing \xff byte\r\n"
    )
    res = post(db, raw)
    # anonymous readers of a public list too
    response = client.get(f"/messages/{res.message_pk}.eml")
    with db() as session:
        stored = session.get_one(RawMessage, session.get_one(Message, res.message_pk).raw_id).data
    assert response.data == stored == raw
    assert response.headers["Content-Disposition"].startswith("attachment;")


def _sign_in_as(client: FlaskClient, address: str) -> None:
    session_for(client, address)


def test_thread_and_month_mbox_hold_every_post(client: FlaskClient, thread: IngestResult) -> None:
    _sign_in_as(client, "reader@example.org")
    box = client.get(f"/threads/{thread.thread_id}.mbox").data
    assert box.count(b"\nFrom ") + box.startswith(b"From ") == 4
    month = client.get("/lists/dev/2026/3.mbox").data
    assert month.count(b"\nMessage-ID: <") == 4


def test_permalink_author_and_month_pages(client: FlaskClient, thread: IngestResult) -> None:
    assert "RE: Build fails" in client.get("/m/r1@x").get_data(as_text=True)
    assert client.get("/m/%3Cr1%40x%3E").status_code == 200
    author = client.get("/lists/dev/authors/2").get_data(as_text=True)
    assert "Posts by Bob" in author and "bob@corp" not in author
    months = client.get("/lists/dev/months").get_data(as_text=True)
    assert "2026-03" in months and "4 posts" in months
    assert "Build fails" in client.get("/lists/dev/2026/3").get_data(as_text=True)


def test_unknown_pages_are_404_pages(client: FlaskClient, thread: IngestResult) -> None:
    _sign_in_as(client, "reader@example.org")
    for url in (
        "/lists/nope/",
        "/threads/999",
        "/m/none@x",
        "/messages/999.eml",
        "/lists/dev/2026/13",
        "/attachments/99/x",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "<h1>404" in response.get_data(as_text=True)


def test_thread_page_uses_a_fixed_number_of_queries(
    app: Flask, client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    small = post(db, make_mail("Small", msgid="s0@x", attachments=[("a.txt", "text/plain", b"a")]))
    post(db, make_mail("Re: Small", msgid="s1@x", in_reply_to="s0@x"))
    big = post(db, make_mail("Big", msgid="b0@x"))
    for i in range(1, 40):
        parent = f"b{(i - 1) // 2}@x"
        post(
            db,
            make_mail(
                "Re: Big",
                msgid=f"b{i}@x",
                in_reply_to=parent,
                attachments=[(f"f{i}.txt", "text/plain", b"x")] if i % 3 == 0 else None,
            ),
        )
    engine = app.extensions["listgate"].engine
    counts: list[int] = []

    def count(*_args: object) -> None:
        counts[-1] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        for res in (small, big):
            counts.append(0)
            assert client.get(f"/threads/{res.thread_id}").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert counts[0] == counts[1], counts
    assert counts[1] <= 8


def test_private_list_pages_are_404_for_outsiders(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("secret", private=True)
    res = post(
        db,
        make_mail(
            "Hush", msgid="p@x", to="secret@lists.test", attachments=[("s.txt", "text/plain", b"s")]
        ),
        list_name="secret",
    )
    assert "secret" not in client.get("/").get_data(as_text=True)
    _sign_in_as(client, "stranger@example.org")
    assert "secret" not in client.get("/").get_data(as_text=True)
    for url in (
        "/lists/secret/",
        f"/threads/{res.thread_id}",
        "/m/p@x",
        f"/messages/{res.message_pk}.eml",
        f"/threads/{res.thread_id}.mbox",
        "/lists/secret/2026/3.mbox",
        "/lists/secret/feed.atom",
        f"/threads/{res.thread_id}/feed.atom",
        "/lists/secret/months",
        "/attachments/1/s.txt",
    ):
        assert client.get(url).status_code == 404, url


def test_hidden_posts_leave_a_placeholder_that_keeps_the_replies_in_place(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    root = post(db, make_mail("Root", msgid="h0@x"))
    mid = post(db, make_mail("Re: Root", msgid="h1@x", in_reply_to="h0@x"))
    post(db, make_mail("Re: Root", msgid="h2@x", in_reply_to="h1@x", references=["h0@x", "h1@x"]))
    from listgate.models import Message
    from listgate.reports import hide

    with transaction(db) as session:
        hide(session, session.get_one(Message, mid.message_pk))
    page = client.get(f"/threads/{root.thread_id}").get_data(as_text=True)
    assert "Showing 2 posts" in page
    assert re.findall(r'<article class="post (?:placeholder )?(d\d+)"', page) == ["d0", "d1", "d2"]
    assert "This post was hidden after reports; moderators will look at it." in page
    # the hidden post's subject and author are not shown
    assert page.count('<h2 class="subject"') == 2
    api = client.get(f"/api/threads/{root.thread_id}").get_json()
    assert [m["parent_message_id"] for m in api["messages"]] == [None, "h0@x"]


def test_format_flowed_paragraphs_are_joined(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    raw = (
        b"From: Fay <fay@example.org>\r\nTo: dev@lists.test\r\nSubject: Flowed\r\n"
        b"Message-ID: <fl@x>\r\n"
        b"Date: Sun, 01 Mar 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
        b"This paragraph was wrapped \r\nby the sender's client \r\nat 72 columns.\r\n\r\n"
        b"-- \r\nFay\r\n"
    )
    res = post(db, raw)
    page = client.get(f"/threads/{res.thread_id}").get_data(as_text=True)
    assert "This paragraph was wrapped by the sender&#39;s client at 72 columns." in page


def test_a_different_message_with_a_taken_message_id_is_shown_as_a_variant(
    client: FlaskClient, thread: IngestResult, db: sessionmaker[Session]
) -> None:
    """Same Message-ID, other bytes: kept and announced on
    the thread and message pages, its raw bytes downloadable.
    """
    from tests.support.web import sign_in

    first = make_mail(
        "Re: Build fails", msgid="r4@x", in_reply_to="root@x", sender="Dan <dan@example.com>"
    )
    assert post(db, first).status == "stored"
    again = post(db, first)
    assert again.status == "duplicate"  # the same bytes twice: nothing new
    other = make_mail(
        "Re: Build fails (resent)",
        body="A second version.\n",
        msgid="r4@x",
        in_reply_to="root@x",
        sender="Dan <dan@example.com>",
    )
    kept = post(db, other)
    assert kept.status == "variant" and kept.message_pk == again.message_pk
    assert post(db, other).status == "duplicate"  # that variant arriving twice is kept once
    notice = "A different message with the same Message-ID arrived on"
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert page.count(notice) == 1 and "Showing 5 posts" in page
    single = client.get(f"/messages/{kept.message_pk}").get_data(as_text=True)
    assert notice in single
    link = search(r'href="(/messages/\d+/variants/\d+\.eml)"', single)
    sign_in(client, db, "reader@example.org")
    assert client.get(link).data == other
    assert (
        client.get(
            link.replace(f"/messages/{kept.message_pk}/", f"/messages/{thread.message_pk}/")
        ).status_code
        == 404
    )


def test_an_earlier_dated_variant_replying_elsewhere_moves_the_post_and_its_note_along(
    client: FlaskClient, thread: IngestResult, db: sessionmaker[Session]
) -> None:
    """The copy with the earliest Date places a Message-ID:
    the post moves to that thread, shown as it first came.
    """
    from tests.support.factories import BASE_DATE

    plan = post(db, make_mail("Release plan", msgid="plan@x", sender="Erin <erin@example.org>"))
    moved = post(
        db,
        make_mail(
            "Re: Release plan",
            body="Sent first, to the plan.\n",
            msgid="r3@x",
            in_reply_to="plan@x",
            sender="Dan <dan@example.com>",
            date=BASE_DATE,
        ),
    )
    assert moved.status == "variant"
    notice = "A different message with the same Message-ID arrived on"
    old = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "Showing 3 posts" in old and notice not in old
    page = client.get(f"/threads/{plan.thread_id}").get_data(as_text=True)
    assert "Showing 2 posts" in page and page.count(notice) == 1
    # the first copy is what is shown
    assert "Re: Build fails" in page and "Sent first, to the plan." not in page
