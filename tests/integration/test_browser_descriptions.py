"""In a real Chromium, a list's description reads as its owner typed it: a blank line starts a
new paragraph and a line break stays a line break, on the list's page and on the list index;
markup in it is shown as text and never runs. (It was one <p>, so every line ran together.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from listgate import lists
from listgate.db import transaction
from tests.integration.test_browser_reading import READER, Site
from tests.support.browser import serving
from tests.support.config import make_settings, migrated

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SCRIPT = "<script>window.__xss=(window.__xss||0)+1</script>"
TYPED = (
    f"Where the project is built.\nReleases are announced here.\n\nBe kind. {SCRIPT}<b>not bold</b>"
)
# what a reader sees: the description's paragraphs, each with its own line breaks
SEEN = [
    "Where the project is built.\nReleases are announced here.",
    f"Be kind. {SCRIPT}<b>not bold</b>",
]
PARAGRAPHS = """() => [...document.querySelectorAll('main p')]
  .filter(p => /Where the project|Be kind/.test(p.textContent))
  .map(p => [p.innerText, p.querySelectorAll('*').length, p.querySelectorAll('br').length])"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = make_settings(tmp_path_factory.mktemp("descriptions"))
    db = migrated(settings)
    with transaction(db) as session:
        lists.create(session, "dev", title="Developers", owners=READER)
    from webarchive import create_app

    app = create_app(settings)
    with serving(app, settings.web_port) as url:
        yield Site(url, app, {})
    db.kw["bind"].dispose()


def test_a_description_typed_in_two_paragraphs_is_shown_in_two(site: Site, browser: Any) -> None:
    context = browser.new_context()
    context.add_cookies([site.cookie()])
    context.add_init_script("window.__xss = 0;")
    page = context.new_page()
    page.goto(f"{site.url}/lists/dev/settings")
    page.fill("#description", TYPED)  # as the owner types it, Enter and all
    with page.expect_navigation() as answer:
        page.click("form.settings button[type=submit]")
    assert answer.value.status == 200
    assert page.input_value("#description") == TYPED  # stored whole, as typed
    for path in ("/lists/dev/", "/"):
        page.goto(site.url + path)
        # two paragraphs; the first keeps its line break (its only element, a <br>)
        assert page.evaluate(PARAGRAPHS) == [[SEEN[0], 1, 1], [SEEN[1], 0, 0]], path
        assert page.evaluate("window.__xss") == 0, path
    context.close()
