"""Helpers for driving the web archive with Flask's test client."""

from __future__ import annotations

import json
import re
import secrets

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate.db import transaction
from listgate.models import OutboxEntry, WebSession
from webarchive.security import session_digest

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: FlaskClient, path: str = "/signin") -> str:
    """The CSRF token of the client's session, read from a page's form."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF.search(page)
    assert match, f"no form with a CSRF token on {path}"
    return match.group(1)


def notices(db: sessionmaker[Session], template: str) -> list[dict]:  # type: ignore[type-arg]
    """Payloads of SEND_NOTICE outbox entries with this template, oldest first."""
    with db() as session:
        rows = session.scalars(select(OutboxEntry).where(OutboxEntry.kind == "listgate.send_notice").order_by(OutboxEntry.id))
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
    form_token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    action = re.search(r'<form method="post" action="([^"]+)"', page.split("<main", 1)[1]).group(1)  # type: ignore[union-attr]
    done = client.post(action, data={"csrf_token": form_token, "next": "/"})
    assert done.status_code == 303


def session_for(client: FlaskClient, address: str, csrf_value: str = "known-csrf-token") -> str:
    """A recorded signed-in session for address in the client's cookie (the flow itself: sign_in); its CSRF token."""
    sid = secrets.token_urlsafe(16)
    with transaction(client.application.extensions["listgate"].writer) as session:
        session.add(WebSession(digest=session_digest(sid), address=address))
    with client.session_transaction() as cookie:
        cookie.update(address=address, sid=sid, csrf=csrf_value)
    return csrf_value
