"""Confirm and unsubscribe links from mail: a GET shows a button, the POST acts (RFC 8058)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, render_template, request
from sqlalchemy.orm import Session

from listgate import confirmations, subscriptions
from listgate.db import transaction
from listgate.subscriptions import SubscriptionError
from webarchive import context
from webarchive.security import csrf_exempt

log = logging.getLogger(__name__)

bp = Blueprint("subscribe", __name__)


def _refused(reason: str, what: str) -> tuple[str, int]:
    """The clear 400 page for a forged, altered or expired link."""
    return render_template("subscribe/invalid.html", reason=reason, what=what), 400


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> str | tuple[str, int]:
    """Show what is about to be confirmed, with a button (link scanners must not act); a link
    that can no longer confirm (replaced by a newer one, used) says so at once."""
    res = context.resources()
    with res.reader() as session:
        try:
            confirmations.confirming(session, res.settings.secret_key, token)
        except SubscriptionError as exc:
            return _refused(str(exc), "confirmation")
    return render_template("subscribe/confirm.html", token=token)


def _act(
    token: str, what: str, action: Callable[[Session, str, str], subscriptions.Outcome]
) -> str | tuple[str, int]:
    """Run action(session, secret, token) in one transaction: the done page, or the 400 page."""
    res = context.resources()
    try:
        with transaction(res.writer) as session:
            outcome = action(session, res.settings.secret_key, token)
    except SubscriptionError as exc:
        return _refused(str(exc), what)
    log.info(
        "%s link used (one-click: %s)", what, request.form.get("List-Unsubscribe") == "One-Click"
    )
    context.enqueue(outcome.outbox)
    return render_template(
        "subscribe/done.html", message=outcome.message, list_name=outcome.list_name
    )


@bp.post("/confirm/<token>")
@csrf_exempt(
    "the signed token in the URL is the credential; the page comes from a mailed link, maybe in a "
    "browser without this site's cookie"
)
def confirm(token: str) -> str | tuple[str, int]:
    """Confirm the subscription the signed link names."""
    return _act(token, "confirmation", confirmations.confirm_token)


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> str | tuple[str, int]:
    """Say what the link would do, with a button; a GET never unsubscribes."""
    res = context.resources()
    with res.reader() as session:
        try:
            mlist, address, thread_id = subscriptions.read_unsubscribe(
                session, res.settings.secret_key, token
            )
        except SubscriptionError as exc:
            return _refused(str(exc), "unsubscribe")
        list_name = mlist.name
    return render_template(
        "subscribe/unsubscribe.html",
        token=token,
        list_name=list_name,
        address=address,
        thread_id=thread_id,
    )


@bp.post("/unsubscribe/<token>")
@csrf_exempt(
    "RFC 8058 one-click: mail clients POST List-Unsubscribe=One-Click with no cookie; "
    "the signed token in the URL is the credential"
)
def unsubscribe(token: str) -> str | tuple[str, int]:
    """Unsubscribe at once: the form's button, or a mail client's one-click POST (RFC 8058)."""
    return _act(token, "unsubscribe", subscriptions.unsubscribe_by_token)
