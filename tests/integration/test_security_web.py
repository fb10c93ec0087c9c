"""Web security, enumerated from the app itself: CSRF on every POST route, single-purpose tokens, a
private list that leaks nothing through any GET route, no header injection into mail, safe
downloads."""

from __future__ import annotations

import json
import re
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions, tokens
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Attachment, Message, OutboxEntry
from tests.support.config import search
from tests.support.factories import make_mail, post
from tests.support.web import session_for

pytestmark = [pytest.mark.soak, pytest.mark.usefixtures("sender")]  # no broker: sends are recorded
MARKERS = ("Zanzibar", "Quokka", "pemberton", "Pemberton", "xylophonemango", "secretlist-title")
TOKEN_ROUTES = ("/confirm/", "/unsubscribe/", "/signin/", "/feeds/")


@pytest.fixture
def site(db: sessionmaker[Session]) -> dict[str, Any]:
    """A public list 'open' and a private list 'secretlist' with a member, a moderator and posts."""
    with transaction(db) as s:
        lists.create(s, "open", policy="open")
        secret = lists.create(
            s,
            "secretlist",
            title="secretlist-title",
            private=True,
            policy="open",
            moderators="boss@example.org",
        )
        lists.subscribe(s, secret, "member@example.org")
    pub = post(
        db,
        make_mail(
            "Public hello",
            msgid="pub@x",
            to="open@lists.test",
            attachments=[("notes.txt", "text/plain", b"public")],
        ),
        "open",
        origin="import",
    )
    priv = post(
        db,
        make_mail(
            "Zanzibar Quokka plans",
            "xylophonemango inside\n",
            msgid="priv@x",
            sender="Pemberton Q <pemberton@hidden.example>",
            to="secretlist@lists.test",
            attachments=[("Zanzibar.txt", "text/plain", b"xylophonemango")],
        ),
        "secretlist",
        origin="import",
    )
    with db() as s:
        att = {a.message_pk: (a.id, a.filename) for a in s.scalars(select(Attachment))}
    return {"pub": pub, "priv": priv, "att": att}


def _sign_in(client: FlaskClient, address: str) -> str:
    """A signed-in session for address (the sign-in flow
    itself is tested in the web tests); its CSRF token.
    """
    return session_for(client, address)


def _urls(app: Flask, site: dict[str, Any], private: bool) -> list[str]:
    """Every GET route of the app, filled with the private
    list's objects (or with ones that do not exist).
    """
    r = site["priv" if private else "pub"]
    att_id, _filename = site["att"][r.message_pk]
    values = {
        "name": "secretlist" if private else "nosuchlist",
        "message_pk": r.message_pk if private else 999999,
        "thread_id": r.thread_id if private else 999999,
        "message_id": "priv@x" if private else "nosuch@x",
        "attachment_id": att_id if private else 999999,
        "filename": "file.txt",
        "year": 2026,
        "month": 3,
        "choice": "auto",
        "variant_id": 888888,
    }  # variant_id the same for both: the answers differ only by the message
    urls = []
    for rule in app.url_map.iter_rules():
        if (
            "GET" not in (rule.methods or ())
            or rule.endpoint == "static"
            or rule.rule.startswith(TOKEN_ROUTES)
        ):
            continue
        if not rule.arguments:
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:[^<>:]+:)?{arg}>", str(values[arg]), path)
        urls.append(path)
    return sorted(urls)


@pytest.mark.parametrize("who", [None, "outsider@example.org"])
def test_private_list_answers_like_a_list_that_does_not_exist(
    app: Flask, site: dict[str, Any], who: str | None
) -> None:
    client = app.test_client()
    if who:
        _sign_in(client, who)
    private, missing = _urls(app, site, True), _urls(app, site, False)
    assert len(private) >= 15, private  # every page family with arguments is covered
    for p_url, m_url in zip(private, missing, strict=True):
        p, m = client.get(p_url), client.get(m_url)
        body = p.get_data(as_text=True)
        # 404, or the same sign-in redirect a list that
        # does not exist gets (mbox exports need a session)
        assert p.status_code == m.status_code and p.status_code in (404, 303), (
            p_url,
            p.status_code,
            m.status_code,
        )
        assert not [k for k in MARKERS if k in body], (p_url, body[:500])
        echoed, location = (
            m.get_data(as_text=True),
            m.headers.get("Location", ""),
        )  # apart from echoing the URL
        for asked, real in zip(m_url.split("/"), p_url.split("/"), strict=True):
            if asked != real:
                echoed, location = echoed.replace(asked, real), location.replace(asked, real)
        assert body == echoed and p.headers.get("Location", "") == location, p_url
    # routes without arguments, and searches, never mention it either
    for url in (
        "/",
        "/api/lists",
        "/search?q=Zanzibar",
        "/search?q=xylophonemango",
        "/search/feed?q=Quokka",
        "/search?q=Zanzibar&list=secretlist",
        "/search?q=plans&author=pemberton%40hidden.example",
        "/moderation",
        "/me/subscriptions",
    ):
        body = client.get(url).get_data(as_text=True)
        # queries are echoed
        unasked = [k for k in MARKERS + ("secretlist",) if k.lower() not in url.lower()]
        assert not [k for k in unasked if k in body], (url, body[:500])


def test_private_list_counts_do_not_change_public_pages(
    app: Flask, site: dict[str, Any], db: sessionmaker[Session]
) -> None:
    client = app.test_client()
    urls = (
        "/",
        "/api/lists",
        "/search?q=plans",
        "/search/feed?q=plans",
        "/lists/open/",
        "/api/lists/open/threads",
    )
    before = {u: client.get(u).get_data(as_text=True) for u in urls}
    for i in range(3):
        post(
            db,
            make_mail(
                f"Another plans {i}",
                msgid=f"priv{i}@x",
                sender="Pemberton Q <pemberton@hidden.example>",
                to="secretlist@lists.test",
            ),
            "secretlist",
            origin="import",
        )
    after = {u: client.get(u).get_data(as_text=True) for u in urls}
    assert [u for u in urls if before[u] != after[u]] == []


def test_a_member_does_see_the_private_list(app: Flask, site: dict[str, Any]) -> None:
    client = app.test_client()
    _sign_in(client, "member@example.org")
    # the 404s above are not vacuous
    assert "Zanzibar" in client.get("/lists/secretlist/").get_data(as_text=True)


def _post_routes(app: Flask) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if "POST" in (r.methods or ())]


def test_every_post_route_refuses_a_request_without_csrf_token(
    app: Flask, site: dict[str, Any]
) -> None:
    values = {
        "name": "open",
        "message_pk": site["pub"].message_pk,
        "thread_id": site["pub"].thread_id,
        "list_id": 1,
        "sub_id": 1,
        "entry_id": 1,
    }
    checked = []
    for rule in _post_routes(app):
        if rule.rule.startswith(TOKEN_ROUTES[:2]):
            # confirm/unsubscribe: the signed token in the URL is the credential
            # (RFC 8058 one-click)
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:[^<>:]+:)?{arg}>", str(values.get(arg, "x")), path)
        client = app.test_client()
        # a moderator: the check must not depend on being allowed
        _sign_in(client, "boss@example.org")
        form = {
            "address": "victim@example.org",
            "subject": "csrf",
            "body": "csrf",
            "valuable": "yes",
            "reason": "csrf",
            "action": "leave",
            "auto_follow": "no",
        }
        for sent in ({}, {"csrf_token": "forged-token"}):
            response = client.post(path, data={**form, **sent})
            body = response.get_data(as_text=True)
            assert response.status_code == 400, (path, sent, response.status_code)
            assert "did not come from this site" in body or "not valid" in body, (path, body[:300])
        checked.append(rule.rule)
    assert len(checked) >= 15, checked
    with app.extensions["listgate"].reader() as s:
        assert s.scalars(select(OutboxEntry)).all() == [], "a refused form still did something"


def _tokens(settings: Settings, db: sessionmaker[Session]) -> dict[str, str]:
    with db() as s:
        mlist = lists.require(s, "open")
    secret = settings.secret_key
    return {
        "confirm": tokens.make(secret, tokens.CONFIRM, {"s": 1, "a": "member@example.org"}),
        "unsubscribe": subscriptions.unsubscribe_token(secret, mlist.id, "member@example.org"),
        "signin": tokens.make(secret, tokens.SIGNIN, {"a": "member@example.org"}),
    }


def test_tokens_are_single_purpose(
    app: Flask, site: dict[str, Any], settings: Settings, db: sessionmaker[Session]
) -> None:
    made = _tokens(settings, db)
    client = app.test_client()
    csrf = _sign_in(client, "someone@example.org")
    for purpose, token in made.items():
        for route in ("confirm", "unsubscribe", "signin"):
            if route == purpose:
                continue
            for response in (
                client.get(f"/{route}/{token}"),
                client.post(
                    f"/{route}/{token}", data={"csrf_token": csrf, "List-Unsubscribe": "One-Click"}
                ),
            ):
                body = response.get_data(as_text=True)
                assert response.status_code == 400, (purpose, route, response.status_code)
                assert "not valid" in body and "Traceback" not in body, (purpose, route, body[:300])
    with client.session_transaction() as sess:
        assert sess.get("address") == "someone@example.org"  # no token signed anyone else in


@pytest.mark.parametrize("route", ["confirm", "unsubscribe", "signin"])
def test_forged_altered_and_expired_tokens_get_a_clear_page(
    app: Flask, site: dict[str, Any], settings: Settings, db: sessionmaker[Session], route: str
) -> None:
    good = _tokens(settings, db)[route]
    altered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    forged = tokens.make(
        "another-secret-0123456789", route, {"a": "member@example.org", "s": 1, "l": 1, "t": 0}
    )
    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=1_000_000_000):  # 2001
        expired = _tokens(settings, db)[route] if route != "unsubscribe" else None
    client = app.test_client()
    csrf = _sign_in(client, "someone@example.org")
    for label, token in (
        ("altered", altered),
        ("forged", forged),
        ("expired", expired),
        ("junk", "x" * 40),
    ):
        if token is None:
            continue  # unsubscribe links are valid for ten years: RFC 8058 links must keep working
        for response in (
            client.get(f"/{route}/{token}"),
            client.post(f"/{route}/{token}", data={"csrf_token": csrf}),
        ):
            body = response.get_data(as_text=True)
            assert response.status_code == 400, (label, response.status_code)
            reason = "expired" if label == "expired" else "not valid"
            assert reason in body and "Traceback" not in body, (label, body[:400])


def test_session_cookie_flags(settings: Settings, engine: Any) -> None:
    from webarchive import create_app

    for base, secure in (("https://archive.example.org", True), ("http://127.0.0.1:8080", False)):
        app = create_app(settings.with_(base_url=base))
        client = app.test_client()
        cookie = client.get("/signin").headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure
        app.extensions["listgate"].engine.dispose()


def test_served_attachments_cannot_run_script(app: Flask, db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        lists.create(s, "open")
    evil = [
        ('..\\..\\evil".html', "text/html", b"<script>alert(1)</script>"),
        ("../../../etc/passwd", "text/plain", b"root"),
        ("x.svg", "image/svg+xml", b"<svg onload=alert(1)/>"),
    ]
    res = post(
        db,
        make_mail("files", msgid="files@x", to="open@lists.test", attachments=evil),
        "open",
        origin="import",
    )
    client = app.test_client()
    with db() as s:
        atts = s.scalars(select(Attachment).where(Attachment.message_pk == res.message_pk)).all()
    assert len(atts) == 3
    for att in atts:
        response = client.get(f"/attachments/{att.id}/{att.filename}")
        assert response.status_code == 200
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")
        ascii_name = search(r'filename="([^"]*)"', disposition)
        assert "/" not in ascii_name and "\\" not in ascii_name and ".." not in ascii_name
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src" not in response.headers["Content-Security-Policy"]


def test_no_header_injection_through_form_fields_into_mail(
    app: Flask, settings: Settings, db: sessionmaker[Session]
) -> None:
    from worker import notices

    with transaction(db) as s:
        lists.create(s, "open")
    client = app.test_client()
    page = client.get("/signin").get_data(as_text=True)
    csrf = search(r'name="csrf_token" value="([^"]+)"', page)
    for address in (
        "victim@example.org\r\nBcc: all@evil.example",
        "victim@example.org\nBcc: all@evil.example",
        "a@b\rSubject: x",
        "Name <victim@example.org>\r\nX-Evil: 1",
    ):
        response = client.post("/signin", data={"csrf_token": csrf, "address": address})
        assert response.status_code == 400, address
        response = client.post(
            "/lists/open/subscribe", data={"csrf_token": csrf, "address": address}
        )
        assert response.status_code in (303, 400), (
            address,
            response.status_code,
        )  # refused with a message
        assert "not an email address" in client.get("/lists/open/").get_data(as_text=True)
    # a signed-in person's web post: CR/LF in the subject never becomes a header
    csrf = _sign_in(client, "ann@example.org")
    response = client.post(
        "/lists/open/new",
        data={
            "csrf_token": csrf,
            "subject": "Hi\r\nBcc: all@evil.example",
            "body": "text\r\n\r\nBcc: x@evil.example\r\n",
        },
    )
    assert response.status_code in (200, 303), response.status_code
    with db() as s:
        for entry in s.scalars(select(OutboxEntry)):
            payload = json.loads(entry.payload or "{}")
            if payload.get("template"):
                _to, data = notices.render(payload, settings)
                assert b"evil.example" not in data.split(b"\r\n\r\n", 1)[0]
        for msg in s.scalars(select(Message)):
            head = message_from_bytes(msg.raw.data, policy=default_policy)
            assert (
                head.get_all("Bcc") is None and "\n" not in msg.subject and "\r" not in msg.subject
            )
