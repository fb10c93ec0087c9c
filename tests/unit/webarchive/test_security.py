"""Safety: headers, cookies, error pages, nothing executes, nothing harvestable."""

from __future__ import annotations

from html.parser import HTMLParser

from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from listgate.config import Settings
from tests.support.factories import MakeList, make_mail, post
from tests.support.web import csrf
from webarchive import create_app


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed", "style"):
            self.bad.append(tag)
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.bad.append(f"{tag} {name}={value}")


def _dangerous(page: str) -> list[str]:
    """Script elements, event handlers and javascript: URLs as a browser would parse them."""
    parser = _Tags()
    parser.feed(page)
    return parser.bad


XSS = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"


def test_strict_content_security_policy_and_nosniff(
    client: FlaskClient, make_list: MakeList
) -> None:
    make_list("dev")
    response = client.get("/lists/dev/")
    csp = response.headers["Content-Security-Policy"]
    assert (
        "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_session_cookie_is_httponly_samesite_and_secure_over_https(
    settings: Settings, engine: Engine
) -> None:
    app = create_app(settings.with_(base_url="https://archive.example.org"))
    client = app.test_client()
    response = client.get("/signin")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_xss_in_subject_name_body_and_filename_is_escaped(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    res = post(
        db,
        make_mail(
            f"Hi {XSS}",
            msgid="x@x",
            sender=f'"{XSS}" <evil@example.org>',
            body=f"text {XSS}\n",
            html=f"<p>html {XSS}<a href='javascript:alert(1)'>x</a></p>",
            attachments=[(f"{XSS}.txt", "text/plain", b"x")],
        ),
    )
    pages = [
        client.get(u).get_data(as_text=True)
        for u in (
            "/lists/dev/",
            f"/threads/{res.thread_id}",
            f"/threads/{res.thread_id}?view=flat",
            "/m/x@x",
            "/lists/dev/2026/3",
            "/search?q=script",
            f"/search?q={XSS}",
            "/lists/dev/authors/1",
        )
    ]
    for page in pages:
        assert _dangerous(page) == []
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in pages[1]


def test_anonymous_pages_hold_no_full_address(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    res = post(
        db,
        make_mail(
            "Contact",
            msgid="c@x",
            sender="Victim Person <victim@private.example>",
            body="Write to victim@private.example or other@secret.example.\n",
        ),
    )
    urls = [
        "/",
        "/lists/dev/",
        f"/threads/{res.thread_id}",
        "/m/c@x",
        "/lists/dev/authors/1",
        "/lists/dev/2026/3",
        "/search?q=contact",
        "/lists/dev/feed.atom",
        f"/threads/{res.thread_id}/feed.atom",
        "/search/feed?q=write",
        "/api/lists",
        "/api/lists/dev/threads",
        f"/api/threads/{res.thread_id}",
        "/api/messages/c%40x",
    ]
    for url in urls:
        body = client.get(url).get_data(as_text=True)
        assert "private.example" not in body and "secret.example" not in body, url


def test_missing_csrf_token_is_a_clear_400(client: FlaskClient, make_list: MakeList) -> None:
    make_list("dev")
    response = client.post("/signin", data={"address": "a@example.org"})
    assert response.status_code == 400 and "did not come from this site" in response.get_data(
        as_text=True
    )
    token = csrf(client)
    assert (
        client.post(
            "/signin", data={"address": "a@example.org", "csrf_token": token + "x"}
        ).status_code
        == 400
    )


def test_database_down_gives_a_503_page_not_a_traceback(settings: Settings) -> None:
    app = create_app(settings.with_(database_url="postgresql://nobody@127.0.0.1:1/none"))
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 503 and "database is unavailable" in page.get_data(as_text=True)
    api = client.get("/api/lists")
    assert api.status_code == 503 and "error" in api.get_json()


def test_wrong_method_and_unknown_api_are_clean_errors(
    client: FlaskClient, make_list: MakeList
) -> None:
    make_list("dev")
    assert client.get("/signout").status_code == 405
    assert client.get("/api/nothing").get_json()["status"] == 404


def test_posting_to_a_read_only_page_is_405_not_a_csrf_error(
    client: FlaskClient, make_list: MakeList
) -> None:
    make_list("dev")
    assert client.post("/lists/dev/").status_code == 405
    response = client.post("/api/lists")
    assert response.status_code == 405 and response.get_json()["status"] == 405
