"""A reader's display choices without JavaScript: the body font (a cookie) and the time zone (person or cookie)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request
from sqlalchemy import select

from listgate import subscriptions
from listgate.db import transaction
from listgate.models import Person
from webarchive.context import db, resources
from webarchive.rendering.clock import zone, zone_names
from webarchive.security import current_address
from webarchive.views.auth import safe_next

bp = Blueprint("prefs", __name__)
FONTS = ("auto", "mono", "prose")  # per block, everything fixed-width, everything proportional
FONT_COOKIE, ZONE_COOKIE = "listgate_font", "listgate_tz"
YEAR = 365 * 86400


def font_choice() -> str:
    """The reader's body font choice (auto by default)."""
    chosen = request.cookies.get(FONT_COOKIE, "auto")
    return chosen if chosen in FONTS else "auto"


def zone_name() -> str:
    """The reader's chosen zone name: the signed-in person's, else the cookie's; '' means UTC."""
    if "_zone_name" not in g:
        address = current_address()
        name = request.cookies.get(ZONE_COOKIE, "")
        if address is not None:
            stored = db().scalar(select(Person.time_zone).where(Person.address == address))
            name = stored or name
        g._zone_name = name if zone(name) is not None else ""
    return g._zone_name


def reader_zone() -> ZoneInfo | None:
    """The reader's zone, or None for UTC."""
    return zone(zone_name())


@bp.get("/prefs/font/<choice>")
def set_font(choice: str):  # type: ignore[no-untyped-def]
    """Remember the body font in a cookie and go back (a plain link: works without JavaScript)."""
    if choice not in FONTS:
        abort(400, description=f"font must be one of {', '.join(FONTS)}")
    response = redirect(safe_next(request.args.get("next")), 303)
    response.set_cookie(FONT_COOKIE, choice, max_age=YEAR, samesite="Lax", httponly=True)
    return response


@bp.get("/settings/time-zone")
def time_zone_form():  # type: ignore[no-untyped-def]
    """Choose the time zone dates are shown in."""
    return render_template("prefs/time_zone.html", zones=zone_names(), chosen=zone_name(),
                           next=safe_next(request.args.get("next")))


@bp.post("/settings/time-zone")
def save_time_zone():  # type: ignore[no-untyped-def]
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
