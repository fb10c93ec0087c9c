"""A signed-in person's profile: display name, copies of own posts, following, digest format."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from listgate import subscriptions
from listgate.db import transaction
from listgate.limits import DISPLAY_NAME, problem
from listgate.models import Person
from listgate.states import DigestFormat
from webarchive.context import db, resources
from webarchive.security import current_address, signed_in

bp = Blueprint("profile", __name__)


@bp.get("/me/profile")
@signed_in
def page() -> str:
    """The profile form."""
    person = db().get(Person, current_address()) or Person(
        address=current_address(),
        name="",
        auto_follow=True,
        copy_own_posts=False,
        digest_format=DigestFormat.MIME,
    )
    return render_template("profile/profile.html", person=person, name=person.name)


def _problem(name: str) -> str:
    """What is wrong with a display name, or ''."""
    if any(c in name for c in '<>"\\@'):
        return 'A display name cannot contain < > " \\ or @.'
    return problem(DISPLAY_NAME, name)


@bp.post("/me/profile")
@signed_in
def save() -> str | tuple[str, int] | Response:
    """Save the profile; the display name becomes the From: name of posts written here."""
    name = " ".join(request.form.get("name", "").split())
    wrong = _problem(name)
    if wrong:  # the form again, holding what was typed
        flash(wrong, "error")
        person = db().get(Person, current_address()) or Person(digest_format=DigestFormat.MIME)
        return render_template("profile/profile.html", person=person, name=name), 400
    with transaction(resources().writer) as session:
        person = subscriptions.person_settings(
            session,
            current_address() or "",
            name=name,
            auto_follow=request.form.get("auto_follow") == "yes",
            copy_own_posts=request.form.get("copy_own_posts") == "yes",
        )
        plain = request.form.get("digest_format") == DigestFormat.PLAIN
        person.digest_format = DigestFormat.PLAIN if plain else DigestFormat.MIME
    flash("Your profile is saved.", "ok")
    return redirect(url_for("profile.page"), 303)
