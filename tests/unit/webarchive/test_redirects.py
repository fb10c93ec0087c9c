"""Open redirect after sign-in: no spelling of `next` sends the browser to another site.

The oracle resolves the Location header the way a browser does (WHATWG URL parsing: leading
and trailing C0 controls and spaces stripped, tabs and newlines removed anywhere, a backslash
read as a slash); tests/integration/test_browser_redirects.py asks real Chromium too.

Links and redirects that carry the query string on (a merged thread's old address, search's
pages and feed) take what the visitor wrote only as query arguments, never as the route's parts
or url_for's options (_external, _scheme, _anchor, _method).
"""

from __future__ import annotations

import re
import secrets

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from listgate import tokens
from listgate.config import Settings
from listgate.threads import resolve
from tests.support.config import search
from tests.support.factories import MakeList, make_mail, merged_pair, post

SITE = "127.0.0.1"
# Each value is what `next` holds after the query string or form was decoded.
ATTACKS = [
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r/evil.example/",
    "/\x0b/evil.example/",
    "/ /evil.example/",
    "/\u3000/evil.example/",
    "\t//evil.example/",
    " //evil.example/",
    "\x0b//evil.example/",
    "\x00//evil.example/",
    "\u3000//evil.example/",
    "//evil.example/",
    "///evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "/\\/evil.example/",
    "/\t\\evil.example/",
    "//\tevil.example/",
    "/\r\n/evil.example/",
    "https://evil.example/",
    "http:evil.example",
    "http:/\\evil.example",
    "javascript:alert(1)",
    "//evil.example@127.0.0.1/",
    "\x7f//evil.example",
    "/\u2215evil.example/",
    "/\uff0f/evil.example/",
    "%2F%2Fevil.example/",
    "/%2F/evil.example/",
    "\\/evil.example",
]
KEPT = {
    "/lists/dev/": "/lists/dev/",
    "/threads/3?view=flat": "/threads/3?view=flat",
    "/m/a%40b.example": "/m/a%40b.example",
    "/search?q=r%C3%A9sum%C3%A9&page=2": "/search?q=r%C3%A9sum%C3%A9&page=2",
}


def browser_resolves(location: str) -> str:
    """The host a browser ends up on after `Location: location`
    from http://SITE/ (WHATWG parsing).
    """
    url = location.strip("".join(map(chr, range(0x21))))
    url = url.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    if url.startswith("//"):
        return url[2:].split("/", 1)[0].rsplit("@", 1)[-1]
    scheme, sep, rest = url.partition(":")
    if sep and scheme.isalpha() and "/" not in scheme:
        return (
            rest.lstrip("/").split("/", 1)[0]
            if scheme.lower() in ("http", "https")
            else f"{scheme}:"
        )
    return SITE


def complete_sign_in(client: FlaskClient, settings: Settings, next_value: str) -> TestResponse:
    """Open a valid sign-in link carrying next_value and press its button; the 303 response."""
    token = tokens.make(
        settings.secret_key, tokens.SIGNIN, {"a": "reader@example.org", "n": secrets.token_hex(6)}
    )
    page = client.get(f"/signin/{token}", query_string={"next": next_value})
    assert page.status_code == 200
    from tests.support.web import CSRF

    form_token = search(CSRF, page.get_data(as_text=True))
    return client.post(f"/signin/{token}", data={"csrf_token": form_token, "next": next_value})


@pytest.mark.parametrize("spelling", ATTACKS, ids=[repr(a) for a in ATTACKS])
def test_no_spelling_of_next_leaves_the_site(
    client: FlaskClient, make_list: MakeList, settings: Settings, spelling: str
) -> None:
    make_list("dev")
    response = complete_sign_in(client, settings, spelling)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert browser_resolves(location) == SITE, location
    assert location.startswith("/") and not location.startswith("//")
    assert all(33 <= ord(c) < 127 and c != "\\" for c in location), location


@pytest.mark.parametrize("path,expected", sorted(KEPT.items()))
def test_a_path_on_this_site_is_where_sign_in_returns(
    client: FlaskClient, make_list: MakeList, settings: Settings, path: str, expected: str
) -> None:
    make_list("dev")
    assert complete_sign_in(client, settings, path).headers["Location"] == expected


def test_the_sign_in_form_carries_only_a_safe_next(
    client: FlaskClient, make_list: MakeList
) -> None:
    make_list("dev")
    page = client.get("/signin", query_string={"next": "/\t/evil.example/"}).get_data(as_text=True)
    assert 'name="next" value="/"' in page
    page = client.get("/signin", query_string={"next": "/lists/dev/"}).get_data(as_text=True)
    assert 'name="next" value="/lists/dev/"' in page


def merged_threads(make_list: MakeList, db: sessionmaker[Session]) -> tuple[int, int]:
    """Two threads joined by a reply that names both: (the absorbed id, the surviving id)."""
    make_list("dev")
    a, b = merged_pair(db)
    assert a.thread_id is not None and b.thread_id is not None
    with db() as session:
        survivor = resolve(session, a.thread_id)
        assert survivor is not None
        absorbed = b.thread_id if survivor.id == a.thread_id else a.thread_id
        resolved = resolve(session, absorbed)
        assert resolved is not None and resolved.id == survivor.id != absorbed
        return absorbed, survivor.id


# A query string may name what url_for takes as its own arguments: the route's part and options.
QUERY_ATTACKS = [
    "thread_id=1&view=flat",
    "view=flat&_external=1&_scheme=javascript",
    "view=flat&_anchor=elsewhere",
    "view=flat&_method=POST",
]


@pytest.mark.parametrize("query", QUERY_ATTACKS)
def test_a_merged_threads_page_redirects_whatever_its_query_names(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session], query: str
) -> None:
    absorbed, survivor = merged_threads(make_list, db)
    response = client.get(f"/threads/{absorbed}?{query}")
    assert response.status_code == 301
    assert response.headers["Location"] == f"/threads/{survivor}?view=flat"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and b"<title>" in page.data


def test_search_links_carry_the_search_but_not_url_options(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    for i in range(21):
        post(db, make_mail(f"Widget {i}", msgid=f"w{i}@x", body="widget report\n"))
    page = client.get(
        "/search?q=widget&sort=date&_external=1&_scheme=javascript&_anchor=x&page=1"
    ).get_data(as_text=True)
    links = re.findall(r'href="([^"]*search[^"]*)"', page)
    carried = [link for link in links if "q=widget" in link]
    assert len(carried) >= 3, links  # the feed in the head and the text, the next page
    for link in carried:
        assert link.startswith("/search") and "#" not in link and "_" not in link, link
