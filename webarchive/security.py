"""Security headers, CSRF tokens on every form, and the signed-in person."""

from __future__ import annotations

import hmac
import secrets

from functools import wraps
from typing import Any, Callable

from flask import Flask, abort, redirect, request, session, url_for

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def init_app(app: Flask) -> None:
    """Install the CSRF check, the security headers and the template helpers."""
    app.extensions["csrf_exempt_blueprints"] = set()
    app.before_request(_check_csrf)
    app.after_request(_headers)
    app.jinja_env.globals.update(csrf_token=csrf_token, current_address=current_address)


def exempt_blueprint(app: Flask, name: str) -> None:
    """Skip the CSRF check for a blueprint whose forms carry their own signed token in the URL."""
    app.extensions["csrf_exempt_blueprints"].add(name)


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def current_address() -> str | None:
    """The signed-in person's address, or None."""
    return session.get("address")


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anonymous visitors to the sign-in page, coming back here afterwards."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_address() is None:
            back = request.referrer if request.method == "POST" and request.referrer else request.full_path
            return redirect(url_for("auth.signin", next=_local(back)), 303)
        return view(*args, **kwargs)
    return wrapper


def _local(url: str) -> str:
    base = _base_url()
    return url[len(base):] if url.startswith(base) else url if url.startswith("/") else "/"


def _base_url() -> str:
    from webarchive.context import settings

    return settings().base_url


def _check_csrf() -> None:
    if request.method in SAFE_METHODS or request.url_rule is None:
        return  # no route (404) or wrong method (405): routing answers that itself
    from flask import current_app

    if request.blueprint in current_app.extensions["csrf_exempt_blueprints"]:
        return
    sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        abort(400, description="This form has expired or did not come from this site. Go back, reload the page and try again.")


def _headers(response):  # type: ignore[no-untyped-def]
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if current_address() is not None or request.method not in SAFE_METHODS:
        response.headers.setdefault("Cache-Control", "private, no-store")
    return response
