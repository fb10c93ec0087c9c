"""Subscribe pressed twice at the same moment without signing in (a double click on a slow page),
on SQLite and PostgreSQL: one request and one confirmation mail, whose link works.

A fresh address, and one that was subscribed before and left (its ended row is asked again).
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from werkzeug.test import TestResponse

from listgate import lists, subscriptions
from listgate.db import transaction
from listgate.models import OutboxEntry, Subscription
from tests.integration.test_web_changes import Site
from tests.integration.test_web_changes import site as site  # the fixture, on both databases
from tests.support.config import search
from tests.support.web import csrf, session_for

pytestmark = pytest.mark.integration


def _as_site_client(site: Site, path: str, form: dict[str, str]) -> TestResponse:
    """POST form to path from a browser of its own holding the site client's cookie (each
    thread its own client: a click of the same page at the same moment)."""
    with site.app.test_client() as other:
        with other.session_transaction() as cookie, site.client.session_transaction() as mine:
            cookie.update(mine)
        return other.post(path, data=form)


def _confirmations(site: Site, address: str) -> list[str]:
    with site.db() as session:
        payloads = [json.loads(p) for p in session.scalars(select(OutboxEntry.payload))]
    return [p["link"] for p in payloads if p.get("template") == "confirm" and p["to"] == address]


def test_subscribe_pressed_twice_at_once_sends_one_confirmation_that_works(site: Site) -> None:
    with transaction(site.db) as session:
        lists.create(session, "dev")
        mlist = lists.require(session, "dev")
        subscriptions.start(session, mlist, "old@example.org")
    with transaction(site.db) as session:
        subscriptions.change(
            session,
            lists.require(session, "dev"),
            "old@example.org",
            subscriptions.LEAVE,
            channel=subscriptions.WEB,
        )
    token = csrf(site.client, "/lists/dev/")

    def press(address: str) -> int:
        form = {"csrf_token": token, "address": address}
        return _as_site_client(site, "/lists/dev/subscribe", form).status_code

    def confirm(path: str) -> str:
        page = _as_site_client(site, path, {"csrf_token": token}).get_data(as_text=True)
        return re.sub(r"<[^>]+>", "", search(r'<p role="status">(.*?)</p>', page)).strip()

    def welcomes(address: str) -> int:
        with site.db() as session:
            payloads = [json.loads(p) for p in session.scalars(select(OutboxEntry.payload))]
        return sum(p.get("template") == "welcome" and p["to"] == address for p in payloads)

    for address in ("new@example.org", "old@example.org"):
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(press, [address, address]))
        assert answers == [303, 303], address
        links = _confirmations(site, address)
        assert len(links) == 1, f"{address}: {len(links)} confirmation mails"
        path = "/" + links[0].split("://", 1)[1].partition("/")[2]
        with ThreadPoolExecutor(2) as pool:  # the link clicked twice: one welcome
            pages = list(pool.map(confirm, [path, path]))
        assert sorted(pages) == [
            "Your subscription is confirmed.",
            "Your subscription was already confirmed.",
        ], address
        assert welcomes(address) == 1, address
    with site.db() as session:
        rows = session.execute(select(Subscription.address, Subscription.status)).all()
    assert sorted(rows) == [("new@example.org", "active"), ("old@example.org", "active")]


def test_subscribe_pressed_twice_at_once_when_signed_in_subscribes_once(site: Site) -> None:
    with transaction(site.db) as session:
        lists.create(session, "dev")
    token = session_for(site.client, "pat@example.org")

    def press(_: int) -> int:
        return _as_site_client(site, "/lists/dev/subscribe", {"csrf_token": token}).status_code

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(press, range(2)))
    assert answers == [303, 303]
    with site.db() as session:
        rows = session.execute(select(Subscription.address, Subscription.status)).all()
        payloads = [json.loads(p) for p in session.scalars(select(OutboxEntry.payload))]
    assert rows == [("pat@example.org", "active")]
    assert [p["template"] for p in payloads] == []  # the page says it; no mail
