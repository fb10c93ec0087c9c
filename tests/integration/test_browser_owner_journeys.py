"""An owner runs her list in a real Chromium while the archive changes under her open pages.

She opens the thread "Beta"; a late mail merges it into "Alpha" while the page stays open; she
presses its "Feature this thread": the thread both are in now is featured (its page and the
list's say so). Then she makes the list's archive "members only" on the settings page (she is not
subscribed: she runs it), approves a held post from the moderation queue and follows its "See it
in its thread" link: she reads the post she published, with the Take down link under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from listgate import lists
from listgate.db import transaction
from tests.integration.test_browser_reading import READER, Site
from tests.support.browser import serving
from tests.support.config import make_settings, migrated
from tests.support.factories import make_mail, post

pytestmark = [pytest.mark.integration, pytest.mark.browser]
FEATURED = "This is a featured thread"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = make_settings(tmp_path_factory.mktemp("owner"))
    db = migrated(settings)
    with transaction(db) as session:
        lists.create(session, "dev", title="Developers", policy="moderated", owners=READER)
    from webarchive import create_app

    app = create_app(settings)
    with serving(app, settings.web_port) as url:
        yield Site(url, app, {})
    db.kw["bind"].dispose()


def _approve(site: Site, page: Any, pk: int | None) -> None:
    """The owner presses Approve on the queue for the held post pk."""
    page.goto(f"{site.url}/moderation")
    with page.expect_navigation():
        page.click(f"form[action='/moderation/messages/{pk}/approve'] button")
    assert "is published" in page.content()


def test_an_owner_runs_her_list_while_it_changes_under_her_pages(site: Site, browser: Any) -> None:
    db = site.app.extensions["listgate"].writer
    context = browser.new_context()
    context.add_cookies([site.cookie()])
    page = context.new_page()
    for subject, msgid, parent in (
        ("Alpha", "a@x.test", None),
        ("Re: Alpha", "a2@x.test", "a@x.test"),
        ("Beta", "b@x.test", None),
    ):
        held = post(db, make_mail(subject, msgid=msgid, in_reply_to=parent))
        assert held.status == "held", held
        _approve(site, page, held.message_pk)

    page.goto(f"{site.url}/lists/dev/")
    with page.expect_navigation():
        page.get_by_role("link", name="Beta").first.click()
    assert FEATURED not in page.content()
    # the late mail: it answers Beta and names Alpha first; the open page still shows Beta's
    assert post(
        db,
        make_mail(
            "Re: Beta",
            msgid="c@x.test",
            in_reply_to="b@x.test",
            references=["a@x.test", "b@x.test"],
            sender=READER,  # an owner's post is published at once
        ),
    ).status in ("stored", "held")
    with page.expect_navigation():
        page.get_by_role("button", name="Feature this thread").click()
    assert "This thread is featured." in page.content()
    assert FEATURED in page.content(), "the page says featured, the thread is not"
    assert "Alpha" in page.locator("h1").inner_text()
    page.goto(f"{site.url}/lists/dev/")
    assert page.get_by_role("list", name="Featured threads").count() == 1

    # members only, from the settings page; she is subscribed to nothing
    page.goto(f"{site.url}/lists/dev/settings")
    page.select_option("#private", "yes")
    with page.expect_navigation():
        page.click("form.settings button[type=submit]")
    held = post(db, make_mail("Gamma", "The gammaword text.\n", msgid="g@x.test"))
    assert held.status == "held"
    _approve(site, page, held.message_pk)
    page.goto(f"{site.url}/lists/dev/")
    assert page.get_by_role("link", name="Gamma").count() >= 1, "the owner's list is a 404"
    with page.expect_navigation() as shown:
        page.get_by_role("link", name="Gamma").first.click()
    assert shown.value.status == 200
    assert "gammaword" in page.content()
    assert page.get_by_role("link", name="Take down").count() >= 1
    context.close()

    stranger = browser.new_context()
    answer = stranger.new_page().goto(f"{site.url}/threads/{held.thread_id}")
    assert answer is not None and answer.status == 404  # a private list shows strangers nothing
    stranger.close()
