"""A reader's display choices, changed without JavaScript.

The body font is kept in a cookie, the time zone on the signed-in person (or in a cookie).
The choices themselves are read by webarchive.templating.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request
from werkzeug.wrappers import Response

from listgate import subscriptions
from listgate.db import transaction
from webarchive.context import resources
from webarchive.rendering.clock import zone, zone_names
from webarchive.security import current_address
from webarchive.templating import FONT_COOKIE, FONTS, ZONE_COOKIE, reader_zone_name
from webarchive.urls import safe_next

bp = Blueprint("prefs", __name__)
YEAR = 365 * 86400


@bp.get("/prefs/font/<choice>")
def set_font(choice: str) -> Response:
    """Remember the body font in a cookie and go back (a plain link: works without JavaScript)."""
    if choice not in FONTS:
        abort(400, description=f"font must be one of {', '.join(FONTS)}")
    response = redirect(safe_next(request.args.get("next")), 303)
    response.set_cookie(FONT_COOKIE, choice, max_age=YEAR, samesite="Lax", httponly=True)
    return response


@bp.get("/settings/time-zone")
def time_zone_form() -> str:
    """Choose the time zone dates are shown in."""
    return render_template(
        "prefs/time_zone.html",
        zones=zone_names(),
        chosen=reader_zone_name(),
        next=safe_next(request.args.get("next")),
    )


@bp.post("/settings/time-zone")
def save_time_zone() -> Response:
    """Keep the zone on the signed-in person, or in a cookie for anonymous readers."""
    name = request.form.get("time_zone", "").strip()
    if name not in ("", "UTC") and zone(name) is None:
        abort(400, description=f"{name[:64]!r} is not a time zone name such as Europe/Paris")
    name = "" if name == "UTC" else name
    address = current_address()
    if address is not None:
        with transaction(resources().writer) as session:
            subscriptions.person_settings(session, address).time_zone = name
    flash(f"Times are now shown in {name or 'UTC'}.", "ok")
    response = redirect(safe_next(request.form.get("next")), 303)
    response.set_cookie(ZONE_COOKIE, name, max_age=YEAR, samesite="Lax", httponly=True)
    return response
