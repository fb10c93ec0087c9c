"""Security headers, CSRF tokens on every form, and the signed-in person.

Every POST carries the session's CSRF token, except a view declared @csrf_exempt(reason) next
to its route: its request is authenticated by something a forger cannot have (a signed token
in the URL) and may come from a page or a mail client without this site's cookie.

Who is signed in is checked against the server on every request: the cookie carries a random
session id whose digest is a WebSession row, so signing out (on this browser or everywhere)
makes any saved copy of the cookie worthless.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from listgate.db import rowcount, transaction
from listgate.models import WebSession

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
View = TypeVar("View", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


def init_app(app: Flask) -> None:
    """Install the session check, the CSRF check and the security headers."""
    app.before_request(_check_session)
    app.before_request(_check_csrf)
    app.after_request(_headers)


def csrf_exempt(reason: str) -> Callable[[View], View]:
    """Declare a view free of the CSRF check, saying why; put it under the route decorator."""

    def declare(view: View) -> View:
        vars(view)["csrf_exempt"] = reason  # a function attribute, read by getattr below
        return view

    return declare


def csrf_exemptions(app: Flask) -> dict[str, str]:
    """Endpoint -> reason, for every view declared with @csrf_exempt."""
    return {
        endpoint: reason
        for endpoint, view in app.view_functions.items()
        if (reason := getattr(view, "csrf_exempt", None))
    }


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def current_address() -> str | None:
    """The signed-in person's address (checked against the server this request), or None."""
    return g.get("_address")


def start_session(address: str) -> None:
    """Sign address in on this browser: a new session id, kept on the server, in a fresh cookie."""
    from webarchive.context import resources

    sid, previous = secrets.token_urlsafe(32), str(session.get("sid", ""))
    expired = datetime.now(UTC) - current_app.permanent_session_lifetime
    with transaction(resources().writer) as db_session:
        # The session this browser had before (if any) ends: a copy of the old cookie is worthless.
        db_session.execute(
            delete(WebSession).where(
                (WebSession.created_at < expired) | (WebSession.digest == session_digest(previous))
            )
        )
        db_session.add(WebSession(digest=session_digest(sid), address=address))
    session.clear()
    session.permanent = True
    session.update(address=address, sid=sid, csrf=secrets.token_urlsafe(24))
    g._address = address


def end_session(everywhere: bool = False) -> None:
    """Sign out this browser or all browsers of the signed-in person; their cookies stop working."""
    from webarchive.context import resources

    address = current_address()
    if everywhere and address is not None:
        where = WebSession.address == address
    else:
        where = WebSession.digest == session_digest(str(session.get("sid", "")))
    with transaction(resources().writer) as db_session:
        ended = rowcount(db_session.execute(delete(WebSession).where(where)))
    if everywhere and address is not None:
        log.info("%s signed out everywhere (%d sessions ended)", address, ended)
    session.clear()
    g._address = None


def session_digest(sid: str) -> str:
    """What the server keeps of a session id (sha256 hex): a database dump signs nobody in."""
    return hashlib.sha256(sid.encode()).hexdigest()


def _check_session() -> None:
    """Take the address from the cookie only while its session row exists and has not expired."""
    g._address = None
    address, sid = session.get("address"), session.get("sid")
    if address is None:
        return
    from webarchive.context import db

    try:
        row = db().get(WebSession, session_digest(str(sid or "")))
    except SQLAlchemyError:  # the database is down: anonymous for this request, the cookie kept
        return
    expired = datetime.now(UTC) - current_app.permanent_session_lifetime
    if row is None or row.address != address or row.created_at < expired:
        # signed out elsewhere, expired, or a cookie from before sessions were recorded
        session.clear()
        return
    g._address = address


def signed_in(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Send anonymous visitors to the sign-in page, coming back here afterwards."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if current_address() is None:
            back = (
                request.referrer
                if request.method == "POST" and request.referrer
                else request.full_path
            )
            return redirect(url_for("auth.signin", next=_local(back)), 303)
        return view(*args, **kwargs)

    return wrapper


def _local(url: str) -> str:
    base = _base_url()
    return url[len(base) :] if url.startswith(base) else url if url.startswith("/") else "/"


def _base_url() -> str:
    from webarchive.context import settings

    return settings().base_url


def _check_csrf() -> None:
    if request.method in SAFE_METHODS or request.url_rule is None:
        return  # no route (404) or wrong method (405): routing answers that itself
    if getattr(current_app.view_functions.get(request.endpoint or ""), "csrf_exempt", None):
        return
    sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        abort(
            400,
            description="This form has expired or did not come from this site. "
            "Go back, reload the page and try again.",
        )


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if current_address() is not None or request.method not in SAFE_METHODS:
        response.headers.setdefault("Cache-Control", "private, no-store")
    return response
