"""The web archive in headless Chromium: read, sign in, vote, follow, reply, report, moderate,
search.

Screenshots of the main pages go to test-artifacts/ (gitignored) for people to look at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from listgate import lists
from listgate.db import transaction
from listgate.models import OutboxEntry
from tests.support.browser import serving, shot
from tests.support.config import make_settings, migrated
from tests.support.factories import make_mail, post
from tests.support.web import RecordingSender

pytestmark = [pytest.mark.integration, pytest.mark.browser]
LONG_BODY = """Hi all,

I tried the new release on a small box and the build fails at the linker step.
Here is what I did, step by step, so you can reproduce it:

  ./configure --prefix=/usr
  make -j2

bob@corp.example wrote:
> Could you post the exact error?
> And the compiler version?
> Also, which distribution?
> Thanks.

Sure: ld: cannot find -lfoo. See https://example.org/bugs/42 for the full log.

--\x20
Alice Example
Release team
"""


class Archive:
    """A running web archive with its data and a way to read the outbox."""

    def __init__(
        self, base_url: str, factory: Any, thread_id: int, sender: RecordingSender
    ) -> None:
        self.url, self.db, self.thread_id, self.sender = base_url, factory, thread_id, sender

    def notices(self, template: str) -> list[dict[str, Any]]:
        with self.db() as session:
            rows = session.scalars(
                select(OutboxEntry)
                .where(OutboxEntry.kind == "listgate.send_notice")
                .order_by(OutboxEntry.id)
            )
            return [
                p for p in (json.loads(r.payload) for r in rows) if p.get("template") == template
            ]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    settings = make_settings(tmp_path_factory.mktemp("browser"))
    factory = migrated(settings)
    with transaction(factory) as session:
        lists.create(
            session,
            "dev",
            title="Developers",
            description="Building and releasing the project.",
            moderators="mod@example.org",
        )
    root = post(
        factory,
        make_mail(
            "Build fails on the linker step",
            msgid="root@example.org",
            body=LONG_BODY,
            attachments=[("build.log", "text/plain", b"ld: cannot find -lfoo\n")],
        ),
    )
    post(
        factory,
        make_mail(
            "RE: Build fails on the linker step",
            msgid="r1@example.org",
            in_reply_to="root@example.org",
            sender="Bob Builder <bob@corp.example>",
            body="Which version of binutils?\n",
        ),
    )
    post(
        factory,
        make_mail(
            "Re: Build fails on the linker step",
            msgid="r2@example.org",
            in_reply_to="r1@example.org",
            references=["root@example.org", "r1@example.org"],
            body="2.40, from Debian.\n",
        ),
    )
    for i in range(4):
        post(
            factory,
            make_mail(
                f"Release notes draft {i}",
                msgid=f"n{i}@example.org",
                sender="Carol <carol@example.net>",
                body="Please review the draft.\n",
            ),
        )
    from webarchive import create_app

    app = create_app(settings)
    sender = RecordingSender()
    app.extensions["listgate"].sender = sender
    assert root.thread_id is not None
    with serving(app, settings.web_port) as url:
        yield Archive(url, factory, root.thread_id, sender)
    factory.kw["bind"].dispose()


def sign_in(page: Any, archive: Archive, address: str) -> None:
    """Sign in the way a person does: ask for a link, open it from the mail, press the button."""
    page.goto(archive.url + "/signin")
    page.fill("#address", address)
    page.click("text=Mail me a sign-in link")
    page.wait_for_selector("text=Check your mail")
    link = [n for n in archive.notices("signin") if n["to"] == address][-1]["link"]
    page.goto(link)
    page.click("main button:has-text('Sign in')")
    page.wait_for_selector(f"text=You are signed in as {address}")


@pytest.mark.long(21)
def test_read_sign_in_vote_follow_reply_report(archive: Archive, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(archive.url + "/")
    shot(page, "01-home")
    page.click("text=Developers")
    page.wait_for_load_state()  # the page the click opened, fully parsed
    assert page.locator("ul.threads li").count() == 5
    shot(page, "02-list")
    page.click("text=Build fails on the linker step")
    assert page.inner_text("h1") == "Build fails on the linker step"
    assert "Showing 3 posts" in page.inner_text("main")
    assert page.locator("article.post.d2").count() == 1
    assert "bob@corp.example" not in page.content()
    shot(page, "03-thread-tree")
    page.click("text=Show flat, by date")
    page.wait_for_load_state()  # the page the click opened, fully parsed
    assert page.locator("article.post.d1").count() == 0
    shot(page, "04-thread-flat")

    sign_in(page, archive, "reader@example.org")
    page.goto(f"{archive.url}/threads/{archive.thread_id}")
    first = page.locator("article.post").first
    first.locator("button:has-text('Yes')").click()
    assert "1 out of 1 found this valuable" in page.locator("article.post").first.inner_text()
    page.click("text=Follow this thread by mail")
    page.wait_for_selector("text=You follow this thread by mail")

    page.locator("article.post").nth(1).locator("text=Reply here").click()
    page.fill("#body", "Try installing libfoo-dev first.\n")
    page.click("button:has-text('Send')")
    page.wait_for_selector("text=Try installing libfoo-dev first.")
    assert "Showing 4 posts" in page.inner_text("main")
    assert any(name == "listgate.fanout" for name, _ in archive.sender.sent), (
        "the reply was handed to the worker"
    )
    shot(page, "05-thread-after-reply")

    page.locator("article.post").nth(2).locator("text=Report").click()
    page.fill("#reason", "Off-topic advertising")
    page.click("button:has-text('Send report')")
    page.wait_for_selector("text=The moderators will look at this post")
    context.close()


def test_moderator_queue_feature_and_search(archive: Archive, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    sign_in(page, archive, "reader2@example.org")
    page.goto(f"{archive.url}/messages/{_first_pk(page, archive)}/report")
    page.fill("#reason", "Spam link")
    page.click("button:has-text('Send report')")
    page.click("text=Sign out")
    sign_in(page, archive, "mod@example.org")
    page.click("nav >> text=Moderation")
    assert "Spam link" in page.inner_text("main")
    shot(page, "06-moderation")
    page.locator("article.post").first.locator("button:has-text('Keep it')").click()
    page.wait_for_selector("text=is published")
    page.goto(f"{archive.url}/threads/{archive.thread_id}")
    page.click("text=Feature this thread")
    page.goto(archive.url + "/lists/dev/")
    first_row = page.locator("ul.threads li").first.text_content() or ""
    assert first_row.strip().startswith("This is a featured thread")

    page.click("nav >> text=Search")
    page.fill("#q", "linker")
    page.click("form[role=search] button:has-text('Search')")
    page.wait_for_load_state()  # the page the click opened, fully parsed
    assert page.locator("ol.results li").count() >= 1
    assert page.locator("ol.results mark").count() >= 1
    shot(page, "07-search")
    context.close()


def _first_pk(page: Any, archive: Archive) -> str:
    page.goto(f"{archive.url}/threads/{archive.thread_id}")
    return page.locator("article.post").first.get_attribute("id")[1:]


def test_reading_with_javascript_disabled(archive: Archive, browser: Any) -> None:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1100, "height": 900}
    )
    page = context.new_page()
    page.goto(f"{archive.url}/lists/dev/")
    page.click("text=Build fails on the linker step")
    assert "Showing" in page.inner_text("main")
    quote = page.locator("details.quote").first
    assert not quote.locator("div.quote").is_visible()
    quote.locator("summary").click()
    assert quote.locator("div.quote").is_visible()
    page.click("text=Show flat, by date")
    assert "view=flat" in page.url
    page.goto(f"{archive.url}/search?q=draft")
    assert page.locator("ol.results li").count() == 4
    context.close()


def test_phone_width_has_no_sideways_scrolling(archive: Archive, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    for path, name in (
        (f"/threads/{archive.thread_id}", "08-thread-phone"),
        ("/lists/dev/", "09-list-phone"),
    ):
        page.goto(archive.url + path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        shot(page, name)
    context.close()


def test_keyboard_reaches_the_thread_and_the_skip_link(archive: Archive, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{archive.url}/lists/dev/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.locator("text=Build fails on the linker step").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/threads/{archive.thread_id}")
    context.close()


def test_a_moderator_purges_a_post_and_only_a_tombstone_is_left(
    archive: Archive, browser: Any
) -> None:
    from listgate.models import Message, RawMessage

    with transaction(archive.db) as session:
        lists.create(session, "legal", title="Legal", moderators="mod@example.org")
    root = post(
        archive.db,
        make_mail(
            "Office keys",
            msgid="keys@example.org",
            to="legal@lists.test",
            body="Who has the office keys?\n",
        ),
        list_name="legal",
    )
    leak = post(
        archive.db,
        make_mail(
            "Re: Office keys",
            msgid="leak@example.org",
            in_reply_to="keys@example.org",
            to="legal@lists.test",
            body="The alarm code is 8842-zanzibar.\n",
            attachments=[("codes.txt", "text/plain", b"8842-zanzibar")],
        ),
        list_name="legal",
    )
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    sign_in(page, archive, "mod@example.org")
    raw_url = f"{archive.url}/messages/{leak.message_pk}.eml"
    assert b"8842-zanzibar" in page.request.get(raw_url).body()  # the check below can fail
    page.goto(f"{archive.url}/threads/{root.thread_id}")
    page.locator(f"#m{leak.message_pk}").locator("text=Take down").click()
    page.fill("#reason", "Security: an alarm code")
    page.check("#purge")
    page.click("button:has-text('Take down')")
    page.wait_for_selector("text=Purge this post for good?")
    shot(page, "10-purge-confirm")
    page.click("button:has-text('Purge for good')")
    page.wait_for_selector("text=is purged")
    tombstone = page.locator(f"#m{leak.message_pk}")
    assert "removed by the moderators on" in tombstone.inner_text()
    assert "Security: an alarm code" in tombstone.inner_text()
    assert "8842-zanzibar" not in page.content() and "codes.txt" not in page.content()
    assert "Showing 1 post " in page.inner_text("main")
    shot(page, "11-tombstone")
    assert page.request.get(raw_url).status == 404
    with archive.db() as session:
        assert (
            session.get_one(RawMessage, session.get_one(Message, leak.message_pk).raw_id).data
            == b""
        )
    context.close()
