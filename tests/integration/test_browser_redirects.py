"""Open redirect after sign-in, asked of real Chromium: whatever `next` a link carries, the
browser that follows it and presses "Sign in" never leaves the site."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import pytest

from listgate import lists, tokens
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.schema import upgrade
from tests.support.browser import chromium, serving
from tests.support.config import free_port, make_settings
from tests.support.web import RecordingSender
from tests.unit.webarchive.test_redirects import ATTACKS

if TYPE_CHECKING:  # playwright is imported where a browser starts (tests/support/browser.py)
    from playwright.sync_api import Route

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.mark.long(32)
def test_chromium_never_leaves_the_site_after_sign_in(tmp_path: Path, chromium_path: str) -> None:
    port = free_port()
    settings = make_settings(tmp_path, LISTGATE_WEB_LISTEN=f"127.0.0.1:{port}")
    engine = make_engine(settings)
    upgrade(engine)
    with transaction(session_factory(writer(engine))) as session:
        lists.create(session, "dev")
    from webarchive import create_app

    app = create_app(settings)
    app.extensions["listgate"].sender = RecordingSender()
    visited: list[str] = []

    def elsewhere(route: Route) -> None:
        """Any request off the site is recorded and
        answered here (no real DNS, no real evil.example).
        """
        visited.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>evil</h1>")

    try:
        with serving(app, port) as url, chromium(chromium_path) as browser:
            context = browser.new_context()
            context.route(lambda u: urlsplit(u).hostname not in ("127.0.0.1", None), elsewhere)
            page = context.new_page()
            for spelling in ATTACKS:
                token = tokens.make(
                    settings.secret_key,
                    tokens.SIGNIN,
                    {"a": "reader@example.org", "n": secrets.token_hex(6)},
                )
                page.goto(f"{url}/signin/{token}?next={quote(spelling, safe='')}")
                page.click("main button:has-text('Sign in')")
                page.wait_for_load_state("load")
                assert urlsplit(page.url).hostname == "127.0.0.1", (spelling, page.url)
                assert page.locator("text=You are signed in as reader@example.org").count() == 1, (
                    spelling
                )
            assert visited == []
            context.close()
    finally:
        app.extensions["listgate"].engine.dispose()
        engine.dispose()
