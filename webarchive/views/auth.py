"""Sign in by email: a signed link that expires, sent by the worker. No passwords."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from listgate import dispatch, tokens
from listgate.db import transaction
from listgate.models import UsedToken
from listgate.subscriptions import SubscriptionError, normalize
from webarchive.context import enqueue, resources, settings
from webarchive.ratelimit import client_ip, limit
from webarchive.security import end_session, start_session
from webarchive.urls import safe_next

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


def sign_in_link(address: str, next_path: str) -> str:
    """The absolute link mailed to address."""
    token = tokens.make(
        settings().secret_key, tokens.SIGNIN, {"a": address, "n": secrets.token_hex(6)}
    )
    query = urlencode({"next": next_path}) if next_path != "/" else ""
    return f"{settings().base_url}/signin/{token}" + (f"?{query}" if query else "")


@bp.get("/signin")
def signin() -> str:
    """The sign-in form."""
    return render_template("auth/signin.html", next=safe_next(request.args.get("next")))


@bp.post("/signin")
def send_link() -> str | tuple[str, int]:
    """Mail a sign-in link to the address given."""
    next_path = safe_next(request.form.get("next"))
    try:
        address = normalize(request.form.get("address", ""))
    except SubscriptionError as exc:
        flash(str(exc), "error")
        return render_template("auth/signin.html", next=next_path), 400
    limit("signin-ip", client_ip())
    limit("signin-address", address)
    link = sign_in_link(address, next_path)
    with transaction(resources().writer) as db_session:
        entry = dispatch.record(
            db_session, dispatch.SEND_NOTICE, 0, {"template": "signin", "to": address, "link": link}
        )
    enqueue([entry])
    log.info("sign-in link sent to %s", address)
    return render_template("auth/sent.html", address=address)


@bp.get("/signin/<token>")
def confirm_page(token: str) -> str | tuple[str, int]:
    """Show a button: link scanners that fetch the link do not sign anyone in."""
    try:
        data = tokens.read(settings().secret_key, tokens.SIGNIN, token)
    except tokens.TokenError as exc:
        return render_template("auth/invalid.html", reason=str(exc)), 400
    return render_template(
        "auth/confirm.html",
        token=token,
        address=data.get("a", ""),
        next=safe_next(request.args.get("next")),
    )


@bp.post("/signin/<token>")
def complete(token: str) -> tuple[str, int] | Response:
    """Sign in with a valid link."""
    try:
        data = tokens.read(settings().secret_key, tokens.SIGNIN, token)
        address = normalize(str(data.get("a", "")))
    except (tokens.TokenError, SubscriptionError, AttributeError) as exc:
        return render_template("auth/invalid.html", reason=str(exc)), 400
    if not _use_once(token):
        return render_template(
            "auth/invalid.html", reason="this link was already used; ask for a new one"
        ), 400
    start_session(address)
    flash(f"You are signed in as {address}.", "ok")
    return redirect(safe_next(request.form.get("next")), 303)


def _use_once(token: str) -> bool:
    """Record the link as used; False when it was used before."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    try:
        with transaction(resources().writer) as db_session:
            # An expired link is refused by its signature anyway: its row is no longer needed.
            stale = datetime.now(UTC) - timedelta(seconds=2 * tokens.MAX_AGE[tokens.SIGNIN])
            db_session.execute(delete(UsedToken).where(UsedToken.used_at < stale))
            db_session.add(UsedToken(digest=digest))
    except IntegrityError:
        return False
    return True


@bp.post("/signout")
def signout() -> Response:
    """Sign out this browser (everywhere=yes: all of this person's); the cookie stops working."""
    everywhere = request.form.get("everywhere") == "yes"
    end_session(everywhere)
    flash("You are signed out on every device." if everywhere else "You are signed out.", "ok")
    return redirect(url_for("pages.home"), 303)
