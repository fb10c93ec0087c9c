"""The thread page as a reader uses it: numbers, outline,
neighbours, unread posts, times, fonts, images, reports.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.models import Message, Report
from tests.support.config import search
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import csrf, sign_in
from webarchive.rendering.clock import ago, sender_clock, time_html, zone

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


@pytest.fixture
def thread(make_list: MakeList, db: sessionmaker[Session]) -> IngestResult:
    make_list("dev")
    root = post(
        db,
        make_mail(
            "Plan",
            msgid="p0@x",
            sender="Ann <ann@example.org>",
            body="Where do we start?\n",
            date=datetime(2026, 3, 1, 12, 5, tzinfo=UTC),
        ),
    )
    at = lambda minute: datetime(2026, 3, 1, 12, minute, tzinfo=UTC)  # noqa: E731
    post(
        db,
        make_mail(
            "Re: Plan",
            msgid="p1@x",
            in_reply_to="p0@x",
            sender="Ben <ben@example.org>",
            body="Here.\n",
            date=at(10),
            attachments=[
                ("shot.png", "image/png", PNG),
                ("notes.pdf", "application/pdf", b"%PDF-1.4\n"),
            ],
        ),
    )
    post(
        db,
        make_mail(
            "Re: Plan",
            msgid="p2@x",
            in_reply_to="p1@x",
            references=["p0@x", "p1@x"],
            sender="Ann <ann@example.org>",
            body="OK.\n",
            date=at(20),
        ),
    )
    post(
        db,
        make_mail(
            "Re: Plan",
            msgid="p3@x",
            in_reply_to="p0@x",
            sender="Cy <cy@example.org>",
            body="Me too.\n",
            date=at(30),
        ),
    )
    return root


def _numbers(page: str) -> list[str]:
    return re.findall(r'<a class="num" id="n(\d+)"', page)


def test_posts_are_numbered_by_date_as_anchors_with_an_outline_in_tree_order(
    client: FlaskClient, thread: IngestResult
) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert _numbers(page) == [
        "1",
        "2",
        "3",
        "4",
    ]  # tree order here equals date order of this thread
    outline = page.split('<ol class="outline">', 1)[1].split("</ol>", 1)[0]
    assert re.findall(r'<li class="(d\d)"><a href="#m\d+">#(\d) (\w+)', outline) == [
        ("d0", "1", "Ann"),
        ("d1", "2", "Ben"),
        ("d2", "3", "Ann"),
        ("d1", "4", "Cy"),
    ]
    assert '<details class="outline"><summary>Outline: 4 posts' in page
    assert 'in reply to <a href="#m2">#2 Ben</a>' in page
    flat = client.get(f"/threads/{thread.thread_id}?view=flat").get_data(as_text=True)
    assert _numbers(flat) == ["1", "2", "3", "4"]


def test_previous_and_next_post_links_and_the_neighbouring_threads(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session], thread: IngestResult
) -> None:
    newer = post(db, make_mail("Newer topic", msgid="nw@x", date=datetime(2026, 4, 1, tzinfo=UTC)))
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert 'title="next post">↓ #2</a>' in page and 'title="previous post">↑ #3</a>' in page
    assert (
        f'<a rel="prev" href="/threads/{newer.thread_id}">← Newer thread: Newer topic</a>' in page
    )
    assert 'rel="next" href="/threads/' not in page  # the oldest thread of the list
    back = client.get(f"/threads/{newer.thread_id}").get_data(as_text=True)
    assert f'<a rel="next" href="/threads/{thread.thread_id}">Older thread: Plan →</a>' in back


def test_signed_in_reader_sees_what_arrived_since_the_last_visit_and_only_once(
    client: FlaskClient, db: sessionmaker[Session], thread: IngestResult
) -> None:
    sign_in(client, db, "reader@example.org")
    first = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "since your last visit" not in first  # the first visit marks nothing as new
    post(
        db,
        make_mail(
            "Re: Plan",
            msgid="p4@x",
            in_reply_to="p3@x",
            sender="Dee <dee@example.org>",
            body="Late.\n",
            date=datetime(2026, 3, 1, 12, 40, tzinfo=UTC),
        ),
    )
    second = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "1 new post since your last visit" in second and 'id="unread"' in second
    assert (
        second.index('id="unread"') < second.index("Late.")
        and second.count("New since your last visit") == 2
    )
    third = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "since your last visit" not in third
    # anonymous readers keep nothing
    other = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "since your last visit" not in other


def test_vote_sentence_with_and_without_votes(
    client: FlaskClient, db: sessionmaker[Session], thread: IngestResult
) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert page.count("Do you find this valuable?") == 4 and "out of 0" not in page
    sign_in(client, db, "v@example.org")
    token = csrf(client, f"/threads/{thread.thread_id}")
    client.post(
        f"/messages/{thread.message_pk}/vote", data={"csrf_token": token, "valuable": "yes"}
    )
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert (
        "1 out of 1 found this valuable. Do you?" in page
        and page.count("Do you find this valuable?") == 3
    )


def test_reported_posts_carry_a_neutral_marker_for_everyone(
    client: FlaskClient, db: sessionmaker[Session], thread: IngestResult
) -> None:
    with transaction(db) as session:
        session.add(
            Report(message_pk=thread.message_pk, list_id=1, address="x@example.org", reason="rude")
        )
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert page.count("Reported: moderators will look at it") == 1
    assert "rude" not in page


def test_times_in_the_readers_zone_with_the_senders_clock_and_how_long_ago() -> None:
    when = datetime(2026, 3, 3, 13, 5, tzinfo=UTC)
    html = time_html(when, 60, zone("America/New_York"), when + timedelta(days=3, hours=1))
    assert '<time datetime="2026-03-03T13:05:00+00:00">Tue 3 Mar 2026 08:05 EST</time>' in html
    assert "3 days ago" in html and "sender's time 14:05 +0100" in html
    assert sender_clock(when, 0, None) == ""  # a sender in UTC read in UTC: nothing to add
    assert (
        ago(when, when + timedelta(days=40)) == ""
        and ago(when, when + timedelta(minutes=1)) == "1 minute ago"
    )
    assert zone("Not/A_Zone") is None and zone("../../etc/passwd") is None


def test_time_zone_choice_is_a_cookie_for_anonymous_readers_and_a_setting_when_signed_in(
    client: FlaskClient, db: sessionmaker[Session], thread: IngestResult
) -> None:
    token = csrf(client, "/settings/time-zone")
    assert (
        client.post(
            "/settings/time-zone", data={"csrf_token": token, "time_zone": "Mars/Base"}
        ).status_code
        == 400
    )
    done = client.post(
        "/settings/time-zone", data={"csrf_token": token, "time_zone": "Asia/Tokyo", "next": "/"}
    )
    assert done.status_code == 303 and "listgate_tz=Asia/Tokyo" in done.headers["Set-Cookie"]
    tokyo = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "Sun 1 Mar 2026 21:05 JST</time>" in tokyo
    # last activity
    assert "Sun 1 Mar 2026 21:30 JST</time>" in client.get("/lists/dev/").get_data(as_text=True)
    assert "Sun 1 Mar 2026 21:05 JST</time>" in client.get("/lists/dev/2026/3").get_data(
        as_text=True
    )
    sign_in(client, db, "tz@example.org")
    token = csrf(client, "/settings/time-zone")
    client.post("/settings/time-zone", data={"csrf_token": token, "time_zone": "Europe/Paris"})
    client.delete_cookie("listgate_tz")
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    assert "Sun 1 Mar 2026 13:05 CET</time>" in page  # kept on the person, not only in this browser
    assert "Times are shown in Europe/Paris" in client.get("/me/subscriptions").get_data(
        as_text=True
    )


def test_font_choice_is_a_cookie_and_a_class_on_the_posts(
    client: FlaskClient, thread: IngestResult
) -> None:
    assert 'class="tree font-auto"' in client.get(f"/threads/{thread.thread_id}").get_data(
        as_text=True
    )
    response = client.get(f"/prefs/font/mono?next=/threads/{thread.thread_id}")
    assert response.status_code == 303 and response.headers["Location"].endswith(
        f"/threads/{thread.thread_id}"
    )
    assert 'class="tree font-mono"' in client.get(f"/threads/{thread.thread_id}").get_data(
        as_text=True
    )
    assert client.get("/prefs/font/comic").status_code == 400
    assert client.get("/prefs/font/prose?next=//evil.example/").headers["Location"] == "/"


def test_images_preview_inline_sandboxed_other_files_download_with_their_type(
    client: FlaskClient, db: sessionmaker[Session], thread: IngestResult
) -> None:
    page = client.get(f"/threads/{thread.thread_id}").get_data(as_text=True)
    previews = re.findall(r'<img src="(/previews/\d+)" alt="shot.png"', page)
    assert len(previews) == 1
    image = client.get(previews[0])
    assert image.mimetype == "image/png" and image.data == PNG
    assert (
        "sandbox" in image.headers["Content-Security-Policy"]
        and image.headers["X-Content-Type-Options"] == "nosniff"
    )
    pdf = search(r'href="(/attachments/\d+/notes.pdf)" download', page)
    download = client.get(pdf)
    assert download.mimetype == "application/pdf" and download.headers[
        "Content-Disposition"
    ].startswith("attachment")
    # not an image: no preview
    assert client.get(f"/previews/{pdf.split('/')[2]}").status_code == 404


def test_an_image_that_lies_about_its_type_gets_no_preview(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    res = post(
        db,
        make_mail(
            "Lie", msgid="lie@x", attachments=[("x.png", "image/png", b"<html><script>1</script>")]
        ),
    )
    with db() as session:
        att = session.get_one(Message, res.message_pk).attachments[0]
    assert client.get(f"/previews/{att.id}").status_code == 404


def test_posts_unread_in_a_thread_merged_away_stay_new_in_the_thread_it_joined(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    """A reader's marks on two threads become one when they merge: nothing unread may hide."""
    make_list("dev")
    a = post(db, make_mail("A", msgid="a0@x", body="a0\n"))
    b = post(db, make_mail("B", msgid="b0@x", body="b0\n"))
    sign_in(client, db, "reader@example.org")
    client.get(f"/threads/{a.thread_id}")
    client.get(f"/threads/{b.thread_id}")
    post(db, make_mail("Re: B", msgid="b1@x", in_reply_to="b0@x", body="unread in B\n"))
    post(db, make_mail("Re: A", msgid="a1@x", in_reply_to="a0@x", body="read in A\n"))
    seen = client.get(f"/threads/{a.thread_id}").get_data(as_text=True)
    assert "1 new post since your last visit" in seen and "read in A" in seen
    post(
        db,
        make_mail(
            "Re: A", msgid="c@x", in_reply_to="b1@x", references=["a1@x", "b1@x"], body="joins\n"
        ),
    )
    page = client.get(f"/threads/{a.thread_id}").get_data(as_text=True)
    assert "unread in B" in page and "joins" in page  # one thread now, A's id survived
    posts = {p.split("</article>")[0] for p in page.split("<article")[1:]}
    unread = [p for p in posts if "unread in B" in p or "joins" in p]
    assert len(unread) == 2 and all("New since your last visit" in p for p in unread), unread
    # and the thread it joined has one mark again: the next visit shows nothing new
    again = client.get(f"/threads/{a.thread_id}").get_data(as_text=True)
    assert "since your last visit" not in again
