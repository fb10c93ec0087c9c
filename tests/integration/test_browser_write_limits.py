"""In a real Chromium, what a person pastes into a form is sent whole or refused with the limit:
an input over its limit is stopped by the browser, saying the field and the limit, its value kept;
a textarea over its limit is refused by the server (a 400), its text kept; four-byte characters
count once, up to the limit. (maxlength did none of this: it cut the paste without a word.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from listgate import lists
from listgate.db import transaction
from listgate.models import Message, Report
from tests.integration.test_browser_reading import READER, Site
from tests.support.browser import serving
from tests.support.config import make_settings, migrated
from tests.support.factories import make_mail, post
from tests.support.web import RecordingSender

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = make_settings(tmp_path_factory.mktemp("write-limits"))
    db = migrated(settings)
    with transaction(db) as session:
        lists.create(session, "dev", owners=READER)
    bob = post(db, make_mail("By Bob", sender="Bob <bob@example.org>", msgid="bob@x"))
    from webarchive import create_app

    app = create_app(settings)
    app.extensions["listgate"].sender = RecordingSender()  # the outbox rows are what counts here
    with serving(app, settings.web_port) as url:
        yield Site(url, app, {"bob": bob.message_pk or 0})
    db.kw["bind"].dispose()


def _rows(site: Site, query: Any) -> list[Any]:
    with site.app.extensions["listgate"].writer() as session:
        return list(session.scalars(query))


def _signed_in(browser: Any, site: Site) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_cookies([site.cookie()])
    return context


def test_a_pasted_subject_is_sent_whole_or_stopped_with_the_limit(site: Site, browser: Any) -> None:
    context = _signed_in(browser, site)
    page = context.new_page()
    page.goto(f"{site.url}/lists/dev/new")
    pasted = "a" * 297 + "ü€😀ß"  # 301 characters
    page.fill("#subject", pasted)
    page.fill("#body", "My text")
    page.click("main form button[type=submit]")
    assert page.url.endswith("/lists/dev/new")  # the browser did not send it
    assert page.input_value("#subject") == pasted  # all of it kept, to correct
    # what the browser's bubble says: its "Please match the requested format." and the title
    said = page.evaluate(
        "(e => [e.validity.patternMismatch, e.title])(document.getElementById('subject'))"
    )
    assert said == [True, "subject: at most 300 characters"]
    assert _rows(site, select(Message.subject)) == ["By Bob"]
    emoji = "😀" * 300  # 300 characters, 600 UTF-16 units: maxlength="300" kept 150
    page.fill("#subject", emoji)
    assert page.input_value("#subject") == emoji
    with page.expect_navigation() as answer:
        page.click("main form button[type=submit]")
    assert answer.value.status == 200 and "/threads/" in page.url
    assert _rows(site, select(Message.subject)) == ["By Bob", emoji]
    context.close()


def test_a_pasted_report_reason_is_sent_whole_or_refused_with_the_limit(
    site: Site, browser: Any
) -> None:
    context = _signed_in(browser, site)
    page = context.new_page()
    page.goto(f"{site.url}/messages/{site.ids['bob']}/report")
    assert "(2,000 characters at most)" in page.inner_text("label[for=reason]")
    pasted = "r" * 1997 + "ü€😀ß"  # 2,001 characters
    page.fill("#reason", pasted)
    assert page.input_value("#reason") == pasted  # the browser cut nothing
    with page.expect_navigation() as answer:
        page.click("main form button[type=submit]")
    assert answer.value.status == 400
    assert page.locator("p.flash.error").inner_text() == (
        "reason: too long: at most 2,000 characters (this one has 2,001)"
    )
    assert page.input_value("#reason") == pasted  # all of it kept, to correct
    assert _rows(site, select(Report)) == []
    page.fill("#reason", pasted[:-1])
    with page.expect_navigation() as answer:
        page.click("main form button[type=submit]")
    assert answer.value.status == 200
    assert _rows(site, select(Report.reason)) == [pasted[:-1]]
    context.close()


def test_a_reply_to_a_mail_with_a_long_subject_is_sent_as_prefilled(
    site: Site, browser: Any
) -> None:
    subject = ("A subject from mail " * 20)[:296] + "ü€😀ß"  # 300: "Re: " would make 304
    parent = post(site.app.extensions["listgate"].writer, make_mail(subject, msgid="long@x"))
    context = _signed_in(browser, site)
    page = context.new_page()
    page.goto(f"{site.url}/messages/{parent.message_pk}/reply")
    valid = "(e => [e.validity.valid, e.value])(document.getElementById('subject'))"
    assert page.evaluate(valid)[0], "the browser would not send the form as prefilled"
    prefilled = page.input_value("#subject")
    assert prefilled == "Re: " + subject[:294] + "…"  # what the person sees, and can change
    with page.expect_navigation() as answer:
        page.click("main form button[type=submit]")
    assert answer.value.status == 200 and "/threads/" in page.url
    assert _rows(site, select(Message.subject).where(Message.subject.startswith("Re: "))) == [
        prefilled
    ]
    context.close()


def test_a_post_over_the_request_limit_is_answered_with_the_limit_and_what_to_do(
    site: Site, browser: Any
) -> None:
    context = _signed_in(browser, site)
    page = context.new_page()
    page.goto(f"{site.url}/lists/dev/new")
    page.fill("#subject", "A long one")
    page.fill("#body", "😀" * 300_000)  # 3.6 MB as a form sends it (12 bytes each)
    with page.expect_navigation() as answer:
        page.click("main form button[type=submit]")
    assert answer.value.status == 413
    said = page.inner_text("main")
    assert "3.4 MB" in said and "200,000 characters" in said, said
    assert "was not read" in said and "go back in your browser" in said, said
    assert _rows(site, select(Message).where(Message.subject == "A long one")) == []
    context.close()
