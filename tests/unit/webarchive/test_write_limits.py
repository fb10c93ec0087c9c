"""What people write on the web is stored whole or refused, never cut.

A value over its field's limit is a 400 naming the field and the limit, with the form shown again
holding what was typed (to correct it), and nothing stored; a value of exactly the limit, ending
in characters of two, three and four bytes, is stored whole. Limits count characters, as
PostgreSQL's VARCHAR(n) does: the same journeys run there (tests/integration/
test_write_limits_postgres.py). Line ends count once, as the browser's maxlength counts them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.db import transaction
from listgate.models import MailingList, Message, Person, Removal, Subscription
from listgate.models.web import Ban, Report
from tests.support.config import search
from tests.support.factories import make_mail, post, subscription_of
from tests.support.web import RecordingSender, csrf, notices, sign_in

Factory = sessionmaker[Session]
ANN = "ann@example.org"


def at(n: int) -> str:
    """n characters, the last three of two, three and four bytes in UTF-8."""
    return "a" * (n - 3) + "ü€😀"


def over(n: int) -> str:
    """One character more than n, the last one of two bytes."""
    return at(n) + "ß"


def lines(n: int) -> str:
    """n characters in lines of ten (the line end one of them), not ending in a line end."""
    return ("x" * 9 + "\n") * (n // 10 - 1) + "x" * 10


def refused(response: Any, message: str, *kept: str) -> None:
    """A 400 whose page says message and shows each kept value whole, to correct it."""
    page = response.get_data(as_text=True)
    assert response.status_code == 400, (response.status_code, page[:400])
    assert message in html.unescape(page), page[page.find("<main") :][:600]
    for value in kept:
        assert str(escape(value)) in page, f"the typed {len(value)} characters are not kept"


def world(client: FlaskClient, factory: Factory) -> int:
    """Lists dev (owned by Ann) and club (private, moderated by Ann), a post by Bob; Ann in."""
    with transaction(factory) as session:
        lists.create(session, "dev", owners=ANN)
        lists.create(session, "club", private=True, moderators=ANN)
    pk = post(factory, make_mail("By Bob", sender="Bob <bob@example.org>", msgid="bob@x"))
    sign_in(client, factory, ANN)
    return pk.message_pk or 0


def subjects(factory: Factory) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(Message.subject).order_by(Message.id)))


def compose_subject(client: FlaskClient, factory: Factory) -> None:
    world(client, factory)
    token = csrf(client, "/lists/dev/new")
    for subject, has in ((over(300), "301"), ("ü" * 5000, "5,000")):
        response = client.post(
            "/lists/dev/new", data={"csrf_token": token, "subject": subject, "body": "My text"}
        )
        message = f"subject: too long: at most 300 characters (this one has {has})"
        refused(response, message, subject, "My text")
        assert 'pattern=".{0,300}" title="subject: at most 300 characters"' in response.get_data(
            as_text=True
        )
    assert subjects(factory) == ["By Bob"]
    done = client.post(
        "/lists/dev/new", data={"csrf_token": token, "subject": at(300), "body": "My text"}
    )
    assert done.status_code == 303
    assert subjects(factory) == ["By Bob", at(300)]


def compose_body(client: FlaskClient, factory: Factory) -> None:
    pk = world(client, factory)
    token = csrf(client, f"/messages/{pk}/reply")
    for body, has in ((over(200_000), "200,001"), ("😀" * 200_001, "200,001")):
        response = client.post(
            f"/messages/{pk}/reply", data={"csrf_token": token, "subject": "Re: x", "body": body}
        )
        message = f"text: too long: at most 200,000 characters (this one has {has})"
        refused(response, message, body, "Re: x")
    assert subjects(factory) == ["By Bob"]
    # 200,000 characters a browser lets through: four-byte ones, and lines sent ending in CRLF
    for body in ("😀" * 200_000, lines(200_000).replace("\n", "\r\n")):
        done = client.post(
            f"/messages/{pk}/reply", data={"csrf_token": token, "subject": "Re: x", "body": body}
        )
        assert done.status_code == 303, done.get_data(as_text=True)[:300]
    with factory() as session:
        bodies = list(session.scalars(select(Message.body_text).where(Message.subject == "Re: x")))
    assert [b.rstrip("\n") for b in bodies] == ["😀" * 200_000, lines(200_000)]


REPLY_SUBJECT = re.compile(r'<input type="text" id="subject" name="subject" value="([^"]*)"')


def reply_to_a_long_subject(client: FlaskClient, factory: Factory) -> None:
    """Mail has no subject limit: a reply's prefilled subject fits the form's 300 (it is a
    suggestion, shortened with a visible "…" that the page points out), so Send just works."""
    world(client, factory)
    fits = "s" * 292 + "ü€😀ß"  # 296: with "Re: " 300, prefilled whole
    long = ("A subject from mail " * 20)[:296] + "ü€😀ß"  # 300: with "Re: " 304
    reply = "Re: " + "r" * 400  # a reply already (404): no second "Re: "
    cases = [
        (fits, "Re: " + fits, False),
        (long, "Re: " + long[:294] + "…", True),  # cut after a space: "from…", not "from …"
        (reply, reply[:299] + "…", True),
    ]
    for n, (subject, expected, shortened) in enumerate(cases):
        parent = post(factory, make_mail(subject, msgid=f"long-{n}@x"))
        with factory() as session:
            assert session.get_one(Message, parent.message_pk).subject == subject
        page = client.get(f"/messages/{parent.message_pk}/reply").get_data(as_text=True)
        prefilled = html.unescape(search(REPLY_SUBJECT, page))
        assert (prefilled, len(prefilled) <= 300) == (expected, True)
        note = "shortened to fit its 300 characters"
        assert (note in html.unescape(page)) == shortened, page[page.find("<main") :][:900]
        token = csrf(client, f"/messages/{parent.message_pk}/reply")
        done = client.post(
            f"/messages/{parent.message_pk}/reply",
            data={"csrf_token": token, "subject": prefilled, "body": "Agreed.\n"},
        )
        assert done.status_code == 303, done.get_data(as_text=True)[:300]
        with factory() as session:
            sent = session.scalars(select(Message).order_by(Message.id.desc())).first()
            assert sent is not None and (sent.subject, sent.thread_id) == (
                expected,
                parent.thread_id,
            )


def _web_post(client: FlaskClient, token: str, subject: str) -> int:
    done = client.post(
        "/lists/dev/new", data={"csrf_token": token, "subject": subject, "body": "First.\n"}
    )
    assert done.status_code == 303
    return int(done.headers["Location"].rsplit("#m", 1)[1])


def edit_body_and_correction_subject(client: FlaskClient, factory: Factory) -> None:
    world(client, factory)
    pk = _web_post(client, csrf(client, "/lists/dev/new"), at(300))
    token = csrf(client, f"/messages/{pk}/edit")
    response = client.post(
        f"/messages/{pk}/edit", data={"csrf_token": token, "body": over(200_000)}
    )
    message = "text: too long: at most 200,000 characters (this one has 200,001)"
    refused(response, message, over(200_000))
    with factory() as session:
        assert session.get_one(Message, pk).body_text.strip() == "First."
    done = client.post(
        f"/messages/{pk}/edit",
        data={"csrf_token": token, "body": "Second.\n", "send_correction": "yes"},
    )
    assert done.status_code == 303
    # the correction's subject is the post's, whole (a web post's subject has 300 at most)
    assert subjects(factory)[-1] == f"Correction: {at(300)}"


def report_reason(client: FlaskClient, factory: Factory) -> None:
    pk = world(client, factory)
    token = csrf(client, f"/messages/{pk}/report")
    response = client.post(
        f"/messages/{pk}/report", data={"csrf_token": token, "reason": over(2000)}
    )
    refused(response, "reason: too long: at most 2,000 characters (this one has 2,001)", over(2000))
    with factory() as session:
        assert session.scalars(select(Report)).all() == []
    sent = lines(2000).replace("\n", "\r\n")  # 2,199 as sent, 2,000 as typed
    done = client.post(f"/messages/{pk}/report", data={"csrf_token": token, "reason": sent})
    assert done.status_code == 303
    with factory() as session:
        assert session.scalars(select(Report.reason)).all() == [lines(2000)]


def profile_name(client: FlaskClient, factory: Factory) -> None:
    world(client, factory)
    token = csrf(client, "/me/profile")
    for name in ("Ann", over(100)):
        response = client.post("/me/profile", data={"csrf_token": token, "name": name})
    message = "display name: too long: at most 100 characters (this one has 101)"
    refused(response, message, over(100))
    response = client.post("/me/profile", data={"csrf_token": token, "name": "Ann <ann@x>"})
    refused(response, 'A display name cannot contain < > " \\ or @.', "Ann <ann@x>")
    with factory() as session:
        assert session.get_one(Person, ANN).name == "Ann"
    done = client.post("/me/profile", data={"csrf_token": token, "name": at(100)})
    assert done.status_code == 303
    with factory() as session:
        assert session.get_one(Person, ANN).name == at(100)


def list_title(client: FlaskClient, factory: Factory) -> None:
    world(client, factory)
    token = csrf(client, "/lists/dev/settings")
    form = {"csrf_token": token, "description": "About dev", "policy": "open", "reply_to": "none"}
    response = client.post("/lists/dev/settings", data={**form, "title": over(200)})
    refused(response, "title: too long: at most 200 characters (this one has 201)", over(200))
    with factory() as session:
        assert session.get_one(MailingList, 1).title == "dev"
    done = client.post("/lists/dev/settings", data={**form, "title": at(200)})
    assert done.status_code == 303
    with factory() as session:
        assert session.get_one(MailingList, 1).title == at(200)


def list_description(client: FlaskClient, factory: Factory) -> None:
    world(client, factory)
    token = csrf(client, "/lists/dev/settings")
    form = {"csrf_token": token, "title": "Dev", "policy": "open", "reply_to": "none"}
    message = "description: too long: at most 2,000 characters (this one has {})"
    for description, has in ((over(2000), "2,001"), ("d" * 3_000_000, "3,000,000")):
        response = client.post("/lists/dev/settings", data={**form, "description": description})
        refused(response, message.format(has), description)
    with factory() as session:
        assert (
            session.get_one(MailingList, 1).title,
            session.get_one(MailingList, 1).description,
        ) == (
            "dev",
            "",
        )
    sent = lines(2000).replace("\n", "\r\n")  # 2,199 as sent, 2,000 as typed
    done = client.post("/lists/dev/settings", data={**form, "description": sent})
    assert done.status_code == 303
    with factory() as session:
        assert session.get_one(MailingList, 1).description == lines(2000)
    # a description stored longer before the limit stays as it is while other settings change
    with transaction(factory) as session:
        session.get_one(MailingList, 1).description = over(2000)
    done = client.post(
        "/lists/dev/settings", data={**form, "description": over(2000), "policy": "members"}
    )
    assert done.status_code == 303
    with factory() as session:
        mlist = session.get_one(MailingList, 1)
        assert (mlist.policy, mlist.description) == ("members", over(2000))


def reject_reason(client: FlaskClient, factory: Factory) -> None:
    pk = world(client, factory)
    token = csrf(client, "/moderation")
    reported = client.post(f"/messages/{pk}/report", data={"csrf_token": token, "reason": "Spam"})
    assert reported.status_code == 303  # now in the queue, with its form to reject it
    path = f"/moderation/messages/{pk}/reject"
    response = client.post(path, data={"csrf_token": token, "reason": over(2000)})
    refused(response, "reason: too long: at most 2,000 characters (this one has 2,001)", over(2000))
    assert notices(factory, "rejected") == []
    with factory() as session:
        assert session.get_one(Message, pk).status == "visible"
    assert client.post(path, data={"csrf_token": token, "reason": at(2000)}).status_code == 303
    assert [n["reason"] for n in notices(factory, "rejected")] == [at(2000)]


def ban_reason(client: FlaskClient, factory: Factory) -> None:
    world(client, factory)
    token = csrf(client, "/moderation")
    form = {"csrf_token": token, "address": "troll@example.org"}
    response = client.post("/moderation/lists/1/bans", data={**form, "reason": over(2000)})
    refused(response, "reason: too long: at most 2,000 characters (this one has 2,001)", over(2000))
    with factory() as session:
        assert session.scalars(select(Ban)).all() == []
    done = client.post("/moderation/lists/1/bans", data={**form, "reason": at(2000)})
    assert done.status_code == 303
    with factory() as session:
        assert session.scalars(select(Ban.reason)).all() == [at(2000)]


def refuse_reason(client: FlaskClient, factory: Factory) -> None:
    world(client, factory)
    with transaction(factory) as session:
        club = lists.require(session, "club")
        waiting = subscription_of(
            subscriptions.change(
                session, club, "cy@example.org", subscriptions.EVERY_POST, channel="web"
            )
        ).id
    token = csrf(client, "/moderation")
    path = f"/moderation/subscriptions/{waiting}/refuse"
    response = client.post(path, data={"csrf_token": token, "reason": over(2000)})
    refused(response, "reason: too long: at most 2,000 characters (this one has 2,001)", over(2000))
    with factory() as session:
        assert session.get_one(Subscription, waiting).status == "awaiting"
    assert client.post(path, data={"csrf_token": token, "reason": at(2000)}).status_code == 303
    assert [n["reason"] for n in notices(factory, "refused")] == [at(2000)]


def takedown_reason(client: FlaskClient, factory: Factory) -> None:
    pk = world(client, factory)
    token = csrf(client, f"/moderation/messages/{pk}/remove")
    path = f"/moderation/messages/{pk}/remove"
    response = client.post(path, data={"csrf_token": token, "reason": over(2000)})
    refused(response, "reason: too long: at most 2,000 characters (this one has 2,001)", over(2000))
    assert 'pattern=".{0,2000}" title="reason: at most 2,000 characters"' in response.get_data(
        as_text=True
    )
    with factory() as session:
        assert session.scalars(select(Removal)).all() == []
    assert client.post(path, data={"csrf_token": token, "reason": at(2000)}).status_code == 303
    with factory() as session:
        assert session.scalars(select(Removal.reason)).all() == [at(2000)]


def test_a_request_over_the_limit_says_the_limit_and_what_to_do(app: Flask, db: Factory) -> None:
    """Past MAX_CONTENT_LENGTH the request is not read: the page says so, the limit, the way on."""
    client = web(app)
    world(client, db)
    token = csrf(client, "/lists/dev/new")
    body = "x" * 3_500_000
    response = client.post(
        "/lists/dev/new", data={"csrf_token": token, "subject": "Big", "body": body}
    )
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 413, page[:300]
    main = " ".join(page[page.find("<main") :].split())
    assert "This form sent 3.5 MB; the archive reads at most 3.4 MB (3,448,576 bytes)" in main
    assert "up to 200,000 characters" in main and "was not read" in main, main[:900]
    assert subjects(db) == ["By Bob"]


def multipart(fields: dict[str, str]) -> dict[str, Any]:
    """A form as a browser's FormData sends it (multipart/form-data), in memory."""
    parts = [
        f'--b0undary\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = ("".join(parts) + "--b0undary--\r\n").encode()
    return {"data": body, "content_type": "multipart/form-data; boundary=b0undary"}


def test_a_form_sent_as_multipart_takes_the_same_text(app: Flask, db: Factory) -> None:
    """A script or a browser's FormData sends multipart/form-data: the same 200,000 characters
    fit (Flask's own 500,000-byte cap on a multipart field answered 413 at 125,000 emoji)."""
    client = web(app)
    world(client, db)
    token = csrf(client, "/lists/dev/new")
    form = {"csrf_token": token, "subject": "Many", "body": "😀" * 200_000}
    done = client.post("/lists/dev/new", **multipart(form))
    assert done.status_code == 303, done.get_data(as_text=True)[:300]
    form["body"] = over(200_000)
    response = client.post("/lists/dev/new", **multipart(form))
    refused(response, "text: too long: at most 200,000 characters (this one has 200,001)")
    assert subjects(db) == ["By Bob", "Many"]


JOURNEYS: list[Callable[[FlaskClient, Factory], None]] = [
    compose_subject,
    compose_body,
    reply_to_a_long_subject,
    edit_body_and_correction_subject,
    report_reason,
    profile_name,
    list_title,
    list_description,
    reject_reason,
    ban_reason,
    refuse_reason,
    takedown_reason,
]


def web(app: Flask) -> FlaskClient:
    """A test client whose app's broker is recorded (posts are sent after their commit)."""
    app.extensions["listgate"].sender = RecordingSender()
    return app.test_client()


@pytest.mark.parametrize("journey", JOURNEYS, ids=lambda j: j.__name__)
def test_write_limits(app: Flask, db: Factory, journey: Callable[..., None]) -> None:
    journey(web(app), db)
