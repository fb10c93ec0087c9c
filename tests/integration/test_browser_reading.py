"""Every page type as a reader sees it, at 1280×800 and 390×844: screenshots in
test-artifacts/reading/, what must be visible (first post above the fold, numbers, outline, edited
marker, the map), and axe-core with no serious or critical accessibility violation."""

from __future__ import annotations

import secrets
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listgate import lists
from listgate.db import transaction
from listgate.models import Message, Report, WebSession
from tests.support.browser import ARTIFACTS, serving
from tests.support.config import make_settings, migrated
from tests.support.factories import make_mail, post
from webarchive.security import session_digest

pytestmark = [pytest.mark.integration, pytest.mark.browser]
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
SIZES = {"1280": (1280, 800), "390": (390, 844)}
READER = "reader@example.org"
PROSE_AND_PATCH = """Hi all,

The build breaks on arm64 since yesterday's merge. This patch fixes it for me;
could someone with a big-endian box try it too?

diff --git a/src/io.c b/src/io.c
--- a/src/io.c
+++ b/src/io.c
@@ -10,7 +10,7 @@ static int read_word(FILE *f)
-    return ntohl(w);
+    return be32toh(w);

Timings before and after:

  board      before   after
  rpi4       12.1 s   11.9 s
  x86-64      3.2 s    3.2 s

--\x20
Alice
"""
TOP_POSTED = """Works on my ppc64 box too, thanks!

Bob

-----Original Message-----
From: Alice <alice@example.org>
Sent: Monday, March 2, 2026 9:00 AM
To: dev@lists.test
Subject: arm64 build fix

The build breaks on arm64 since yesterday's merge.
"""


def tiny_png(size: int = 24) -> bytes:
    """A real PNG of a blue square."""
    raw = b"".join(b"\x00" + b"\x2f\x5d\x8a" * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class Site:
    """The running archive and the ids its pages are reached by."""

    def __init__(self, url: str, app: Any, ids: dict[str, int]) -> None:
        self.url, self.app, self.ids = url, app, ids

    def cookie(self) -> dict[str, Any]:
        """A signed-in session cookie for READER, made with the app's own secret."""
        sid = secrets.token_urlsafe(16)  # a recorded server-side session, as signing in makes one
        with transaction(self.app.extensions["listgate"].writer) as session:
            session.add(WebSession(digest=session_digest(sid), address=READER))
        serializer = self.app.session_interface.get_signing_serializer(self.app)
        value = serializer.dumps({"address": READER, "sid": sid, "csrf": "browser-csrf"})
        return {"name": self.app.config["SESSION_COOKIE_NAME"], "value": value, "url": self.url}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = make_settings(tmp_path_factory.mktemp("reading"))
    db = migrated(settings)
    with transaction(db) as session:
        lists.create(
            session, "dev", title="Developers", description="Building and releasing the project."
        )
    root = post(
        db,
        make_mail(
            "arm64 build fix",
            msgid="a0@x",
            body=PROSE_AND_PATCH,
            attachments=[
                ("board.png", "image/png", tiny_png()),
                ("trace.txt", "text/plain", b"ok\n"),
            ],
        ),
    )
    reply = post(
        db,
        make_mail(
            "RE: arm64 build fix",
            msgid="a1@x",
            in_reply_to="a0@x",
            sender="Bob <bob@corp.example>",
            body=TOP_POSTED,
        ),
    )
    hidden = post(
        db,
        make_mail(
            "Re: arm64 build fix",
            msgid="a2@x",
            in_reply_to="a1@x",
            sender="Spam <s@spam.example>",
            body="buy now\n",
        ),
    )
    post(
        db,
        make_mail(
            "Re: arm64 build fix",
            msgid="a3@x",
            in_reply_to="a2@x",
            references=["a0@x", "a1@x", "a2@x"],
            sender="Carol <carol@example.net>",
            body="Ignore the spam above; the fix works here.\n",
        ),
    )
    mine = post(
        db,
        make_mail(
            "Re: arm64 build fix",
            msgid="a4@x",
            in_reply_to="a0@x",
            sender=f"Reader <{READER}>",
            body="Tested on rpi4: fine.\n",
            date=datetime.now(UTC) - timedelta(hours=1),
        ),
        origin="web",
    )
    for i in range(3):
        post(
            db,
            make_mail(
                f"Release notes draft {i}",
                msgid=f"n{i}@x",
                sender="Carol <carol@example.net>",
                body="Please review the draft.\n",
            ),
        )
    from listgate.reports import hide

    with transaction(db) as session:
        hide(session, session.get_one(Message, hidden.message_pk))
        session.add(
            Report(message_pk=reply.message_pk, list_id=1, address="x@example.org", reason="tone")
        )
    from webarchive import create_app

    app = create_app(settings)
    with serving(app, settings.web_port) as url:
        assert root.thread_id and root.message_pk and mine.message_pk  # archived, so numbered
        yield Site(
            url, app, {"thread": root.thread_id, "root": root.message_pk, "mine": mine.message_pk}
        )
    db.kw["bind"].dispose()


def pages(site: Site) -> list[tuple[str, str, bool]]:
    """(name, path, signed in) of every page type."""
    t, root, mine = site.ids["thread"], site.ids["root"], site.ids["mine"]
    return [
        ("home", "/", False),
        ("list", "/lists/dev/", False),
        ("thread", f"/threads/{t}", False),
        ("thread-flat", f"/threads/{t}?view=flat", False),
        ("thread-signed-in", f"/threads/{t}", True),
        ("message", f"/messages/{root}", False),
        ("author", f"/lists/dev/authors/{root}", False),
        ("months", "/lists/dev/months", False),
        ("month", "/lists/dev/2026/3", False),
        ("search", "/search?q=arm64", False),
        ("search-operators", "/search?q=from%3Acarol+-spam&group=thread", False),
        ("thread-map", f"/threads/{t}/map", False),
        ("activity", "/lists/dev/activity", False),
        ("history", f"/messages/{mine}/history", False),
        ("edit", f"/messages/{mine}/edit", True),
        ("time-zone", "/settings/time-zone", False),
        ("settings", "/me/subscriptions", True),
        ("signin", "/signin", False),
        ("not-found", "/threads/99999", False),
    ]


def _context(browser: Any, site: Site, width: str, signed_in: bool, **kw: Any) -> Any:
    w, h = SIZES[width]
    context = browser.new_context(
        viewport={"width": w, "height": h}, is_mobile=width == "390", **kw
    )
    if signed_in:
        context.add_cookies([site.cookie()])
    return context


def _axe(page: Any) -> list[str]:
    """Serious and critical violations on the page, described."""
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("width", sorted(SIZES))
@pytest.mark.long(48)
def test_every_page_type_screenshot_and_axe(site: Site, browser: Any, width: str) -> None:
    problems: dict[str, list[str]] = {}
    out = ARTIFACTS / "reading"
    out.mkdir(parents=True, exist_ok=True)
    for signed_in in (False, True):
        # The pages' CSP forbids every script: bypassed in this context only, to inject axe.
        context = _context(browser, site, width, signed_in, bypass_csp=True)
        page = context.new_page()
        for name, path, needs_session in pages(site):
            if needs_session != signed_in:
                continue
            response = page.goto(site.url + path)
            assert response is not None and response.status == (
                404 if name == "not-found" else 200
            ), (name, path)
            page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (
                f"{name} scrolls sideways"
            )
            found = _axe(page)
            if found:
                problems[f"{name} at {width}"] = found
        context.close()
    assert problems == {}


@pytest.mark.parametrize("width", sorted(SIZES))
def test_thread_page_shows_the_first_post_above_the_fold_numbers_outline_and_markers(
    site: Site, browser: Any, width: str
) -> None:
    context = _context(browser, site, width, signed_in=False, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.url}/threads/{site.ids['thread']}")
    first = page.locator("article.post").first
    box = first.locator("header").bounding_box()
    assert box is not None and box["y"] + box["height"] <= SIZES[width][1], (
        f"first post header at {box}"
    )
    body = first.locator(".body").bounding_box()
    assert body is not None and body["y"] < SIZES[width][1]
    assert page.locator("a.num").all_inner_texts() == ["#1", "#2", "#3", "#4", "#5"]
    outline = page.locator("details.outline")
    assert not outline.locator("ol").is_visible()
    outline.locator("summary").click()
    assert outline.locator("li").count() == 5 and "(hidden post)" in outline.inner_text()
    assert page.locator("article.placeholder").inner_text().endswith("moderators will look at it.")
    assert "Spam" not in page.inner_text("main")  # neither the hidden post nor its author
    assert page.locator("text=Reported: moderators will look at it").count() == 1
    assert page.locator(".body .mono").first.inner_text().startswith("diff --git")
    assert page.locator(".body .prose").first.inner_text().startswith("Hi all,")
    mono_font = page.locator(".body .mono").first.evaluate("e => getComputedStyle(e).fontFamily")
    prose_font = page.locator(".body .prose").first.evaluate("e => getComputedStyle(e).fontFamily")
    assert "Mono" in mono_font and "Mono" not in prose_font
    earlier = page.locator("details.earlier").first
    assert (
        "Earlier message" in earlier.locator("summary").inner_text()
        and not earlier.locator(".quote").is_visible()
    )
    image = page.locator('img[alt="board.png"]')
    # the preview loaded from its own path
    assert image.evaluate("e => e.complete && e.naturalWidth") == 24
    assert page.locator("text=Do you find this valuable?").count() == 4
    context.close()


def _search_page(site: Site, browser: Any) -> tuple[Any, Any]:
    """A reader's context and the search page in it, the help about what to type open."""
    context = _context(browser, site, "1280", signed_in=False)
    page = context.new_page()
    page.goto(f"{site.url}/search")
    page.click("details.search-help summary")
    return context, page


def test_a_long_search_in_the_box_is_read_to_its_end_or_refused_with_the_limit(
    site: Site, browser: Any
) -> None:
    context, page = _search_page(site, browser)
    assert "A search has at most 1,000 characters." in page.inner_text("details.search-help")
    nobody = " ".join(f"-from:nobody{i:02d}@example.org" for i in range(25))
    text = f"arm64 {nobody} -from:bob"  # its last operator leaves Bob's reply out
    assert 600 <= len(text) <= 1000
    page.fill("#q", text)
    with page.expect_navigation():
        page.press("#q", "Enter")
    found = page.locator("ol.results h2").all_inner_texts()
    assert "arm64 build fix" in found and "RE: arm64 build fix" not in found
    assert page.input_value("#q") == text
    longer = f"{text} {'x' * 400}"
    page.fill("#q", longer)
    with page.expect_navigation() as answer:
        page.press("#q", "Enter")
    assert answer.value.status == 400
    assert page.locator("p[role=alert]").inner_text() == (
        f"too long: at most 1,000 characters (this one has {len(longer):,})"
    )
    assert page.input_value("#q") == longer  # the box cut nothing: it is there to shorten
    assert page.locator("ol.results").count() == 0
    context.close()


def test_a_long_author_is_searched_whole_or_refused_with_the_limit(
    site: Site, browser: Any
) -> None:
    context, page = _search_page(site, browser)
    assert (
        "An author (from: or Author) has at most 320, as the longest address; "
        "a list name (list: or List) at most 64."
    ) in page.inner_text("details.search-help")
    pasted = f"{'a' * 64}@{'.'.join(['b' * 63] * 4)}x"  # one more than RFC 5321's longest
    page.fill("input[name=author]", pasted)
    with page.expect_navigation() as answer:
        page.press("input[name=author]", "Enter")
    assert answer.value.status == 400
    assert page.locator("p[role=alert]").inner_text() == (
        "author: too long: at most 320 characters (this one has 321)"
    )
    assert page.input_value("input[name=author]") == pasted  # all of it kept, to correct
    assert page.locator("ol.results").count() == 0
    page.fill("input[name=author]", "alice@example.org")
    page.fill("#q", "arm64")
    with page.expect_navigation() as answer:
        page.press("#q", "Enter")
    assert answer.value.status == 200
    assert page.locator("ol.results h2").all_inner_texts() == ["arm64 build fix"]
    context.close()


def test_a_reader_edits_a_post_chooses_a_font_and_a_zone_and_finds_the_map(
    site: Site, browser: Any
) -> None:
    context = _context(browser, site, "1280", signed_in=True, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.url}/threads/{site.ids['thread']}")
    mine = page.locator(f"#m{site.ids['mine']}")
    mine.locator("text=Edit").click()
    page.fill("#body", "Tested on rpi4 and rpi5: fine.\n")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Subscribers were not mailed again")
    mine = page.locator(f"#m{site.ids['mine']}")
    assert "Tested on rpi4 and rpi5" in mine.inner_text() and mine.locator(
        "a.edited"
    ).inner_text().startswith("Post edited")
    mine.locator("a.edited").click()
    # A click does not wait for the page it opens: wait for it before counting what it shows.
    page.wait_for_url(f"**/messages/{site.ids['mine']}/history")
    assert page.locator(
        "article.post"
    ).count() == 2 and "Version 1, as first sent" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "reading" / "history-after-edit-1280.png"), full_page=True)
    page.goto(f"{site.url}/threads/{site.ids['thread']}")
    page.click("text=proportional")
    page.wait_for_selector("section.font-prose")
    assert page.locator("section.font-prose").count() == 1
    page.goto(f"{site.url}/settings/time-zone?next=/threads/{site.ids['thread']}")
    page.select_option("#time_zone", "Asia/Tokyo")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"**/threads/{site.ids['thread']}")
    assert "JST" in page.locator("article.post time").first.inner_text()
    page.click("text=Who talks to whom")
    page.wait_for_load_state()  # the page the click opened, fully parsed
    # Alice, Bob, Carol, the reader (the spam is hidden)
    assert page.locator("figure.map svg circle").count() == 4
    assert page.locator("table").first.locator("tbody tr").count() == 4
    page.screenshot(
        path=str(ARTIFACTS / "reading" / "thread-map-signed-in-1280.png"), full_page=True
    )
    context.close()
