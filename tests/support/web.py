"""The web archive in Flask's test client (fixtures `app`, `client`, `sender`), and signing in."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from listgate.config import Settings
from listgate.db import transaction
from listgate.models import OutboxEntry, WebSession
from tests.support.config import search
from webarchive.security import session_digest

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: FlaskClient, path: str = "/signin") -> str:
    """The CSRF token of the client's session, read from a page's form."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF.search(page)
    assert match, f"no form with a CSRF token on {path}"
    return match.group(1)


def notices(db: sessionmaker[Session], template: str) -> list[dict]:
    """Payloads of SEND_NOTICE outbox entries with this template, oldest first."""
    with db() as session:
        rows = session.scalars(
            select(OutboxEntry)
            .where(OutboxEntry.kind == "listgate.send_notice")
            .order_by(OutboxEntry.id)
        )
        payloads = [json.loads(r.payload) for r in rows]
    return [p for p in payloads if p.get("template") == template]


def sign_in(client: FlaskClient, db: sessionmaker[Session], address: str) -> None:
    """Sign in the way a person does: ask for a link, open it, press the button."""
    token = csrf(client)
    response = client.post("/signin", data={"csrf_token": token, "address": address})
    assert response.status_code == 200, response.get_data(as_text=True)
    link = [p for p in notices(db, "signin") if p["to"] == address][-1]["link"]
    path = link.split("://", 1)[1].split("/", 1)[1]
    page = client.get("/" + path).get_data(as_text=True)
    form_token = search(CSRF, page)
    action = search(r'<form method="post" action="([^"]+)"', page.split("<main", 1)[1])
    done = client.post(action, data={"csrf_token": form_token, "next": "/"})
    assert done.status_code == 303


def session_for(client: FlaskClient, address: str, csrf_value: str = "known-csrf-token") -> str:
    """A recorded signed-in session for address in the client's
    cookie (the flow itself: sign_in); its CSRF token.
    """
    sid = secrets.token_urlsafe(16)
    with transaction(client.application.extensions["listgate"].writer) as session:
        session.add(WebSession(digest=session_digest(sid), address=address))
    with client.session_transaction() as cookie:
        cookie.update(address=address, sid=sid, csrf=csrf_value)
    return csrf_value


class RecordingSender:
    """Stands in for the broker: records send_task calls (the outbox rows hold the payloads)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[int]]] = []

    def send_task(self, name: str, args: Any = (), **_kw: Any) -> None:
        """Record the task name and its arguments."""
        self.sent.append((name, list(args)))

    @property
    def names(self) -> list[str]:
        """The task names sent, in order."""
        return [name for name, _ in self.sent]


@pytest.fixture
def app(settings: Settings, engine: Engine) -> Iterator[Flask]:
    """The web archive on the test's migrated database."""
    from webarchive import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["listgate"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client (cookies kept between requests)."""
    return app.test_client()


@pytest.fixture
def sender(app: Flask) -> RecordingSender:
    """The app's broker client, replaced by a RecordingSender."""
    fake = RecordingSender()
    app.extensions["listgate"].sender = fake
    return fake
