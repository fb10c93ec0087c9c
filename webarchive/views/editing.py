"""Editing a post written on the web: by its author, within a window.

Every version is kept; the raw bytes are never touched. Subscribers got the first version by
mail. They are mailed again only when the author asks ("send the correction"): the correction
then goes out as a reply in the thread, through the same path as any web post, so it is
archived and delivered exactly once. Posts that came by mail are not editable: they were
delivered as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate.db import transaction
from listgate.limits import BODY, problem, typed
from listgate.models import MailingList, Message, MessageEdit
from listgate.states import PostOrigin
from webarchive.context import db, resources, settings
from webarchive.ratelimit import limit
from webarchive.reading.access import readable_message
from webarchive.rendering.bodies import render_text
from webarchive.security import current_address, signed_in
from webarchive.views.compose import form_key, send

bp = Blueprint("editing", __name__)


@bp.app_template_global()
def edit_state(msg: Message, address: str | None, now: datetime | None = None) -> str:
    """'editable', 'closed' (window over), 'mail' (came by mail) or '' (not the author's post)."""
    if address is None or msg.from_addr != address:
        return ""
    if msg.origin != PostOrigin.WEB:
        return "mail"
    window = timedelta(hours=settings().edit_window_hours)
    return "editable" if (now or datetime.now(UTC)) - msg.date < window else "closed"


@bp.app_template_global()
def edit_window_hours() -> int:
    """How long web posts stay editable."""
    return settings().edit_window_hours


@bp.app_template_global()
def render_text_body(text: str) -> Markup:
    """One version's text, rendered like a post's body (addresses masked for anonymous readers)."""
    return render_text(text, False, current_address() is None)


def versions(session: Session, msg: Message) -> list[MessageEdit]:
    """Every version of a post's text, oldest first (the original alone when never edited)."""
    found = list(
        session.scalars(
            select(MessageEdit)
            .where(MessageEdit.message_pk == msg.id)
            .order_by(MessageEdit.version)
        )
    )
    return found or [
        MessageEdit(message_pk=msg.id, version=1, body_text=msg.body_text, created_at=msg.date)
    ]


def _editable(message_pk: int) -> Message:
    msg = readable_message(db(), message_pk)
    state = edit_state(msg, current_address())
    if state == "mail":
        abort(
            403,
            description="This post came by mail and was delivered as it is: it cannot be edited.",
        )
    if state == "closed":
        hours = settings().edit_window_hours
        abort(
            403,
            description=f"Posts can be edited for {hours} hours after they are sent; "
            "that time is over.",
        )
    if state != "editable":
        abort(403, description="Only the author of a post can edit it.")
    return msg


def _form(msg: Message, body: str) -> str:
    """The edit form holding body."""
    return render_template(
        "editing/edit.html",
        msg=msg,
        body=body,
        hours=settings().edit_window_hours,
        key=request.form.get("key", "") or form_key(),
    )


def _record(message_pk: int, text: str) -> tuple[bool, bool]:
    """Keep text as the post's newest version (at the first edit, the text first sent too);
    the text it has already (the same form sent again) is no new version. (Changed now, edited
    ever.)"""
    now = datetime.now(UTC)
    with transaction(resources().writer) as session:
        # locked first: the same form saved twice at once (PostgreSQL) reads the first's text
        row = session.get_one(Message, message_pk, with_for_update=True)
        if row.body_text == text:
            return False, row.edited_at is not None
        latest = (
            session.scalar(
                select(func.max(MessageEdit.version)).where(MessageEdit.message_pk == row.id)
            )
            or 0
        )
        if latest == 0:  # keep the text as first sent beside the raw bytes
            session.add(
                MessageEdit(
                    message_pk=row.id, version=1, body_text=row.body_text, created_at=row.date
                )
            )
            latest = 1
        session.add(
            MessageEdit(message_pk=row.id, version=latest + 1, body_text=text, created_at=now)
        )
        row.body_text, row.edited_at = text, now
    return True, True


def _correction(msg: Message, text: str) -> tuple[str, str]:
    """The subject and text of the mail that sends an edit to the list."""
    return (
        f"Correction: {msg.subject}",  # not typed: the post's own subject, whole
        f"A correction to my post of {msg.date:%d %b %Y %H:%M} UTC, which now reads:\n\n{text}",
    )


@bp.route("/messages/<id:message_pk>/edit", methods=["GET", "POST"])
@signed_in
def edit(message_pk: int) -> str | tuple[str, int] | Response:
    """Change the text of one's own web post; optionally mail the correction to the list."""
    msg = _editable(message_pk)
    if request.method == "GET":
        return _form(msg, msg.body_text)
    text = typed(request.form.get("body", ""))
    if not text.strip():
        abort(400, description="Please write some text.")
    if wrong := problem(BODY, text):  # the form again, holding what was typed
        flash(wrong, "error")
        return _form(msg, text), 400
    limit("post", current_address() or "")
    changed, edited = _record(msg.id, text)
    mlist = db().get_one(MailingList, msg.list_id)
    subject, correction = _correction(msg, text)
    key = request.form.get("key", "")  # the same form sent again mails it once
    if request.form.get("send_correction") == "yes" and edited:
        # an edit made before may be mailed now (the same form again: once); the text as first
        # sent needs no correction
        send(mlist, subject, correction, msg, key)
        flash("Your post is changed, and the correction is on its way to the subscribers.", "ok")
    elif not changed:
        flash("Your post already reads so: nothing was changed, nobody was mailed.", "ok")
    else:
        flash("Your post is changed. Subscribers were not mailed again.", "ok")
    return redirect(url_for("pages.thread", thread_id=msg.thread_id) + f"#m{msg.id}", 303)


@bp.get("/messages/<id:message_pk>/history")
def history(message_pk: int) -> str:
    """Every version of a post with its date."""
    session = db()
    msg = readable_message(session, message_pk)
    return render_template("editing/history.html", msg=msg, versions=versions(session, msg))
