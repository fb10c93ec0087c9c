"""Taking a post down on the web: remove it with a reason, or purge it after a confirmation.

The same service as `listgate messages remove` (listgate.removal), so the tombstone, the counts,
the cancelled copies and the audit log entry are the same whichever way a moderator acts.
Moderators, owners and site administrators of the post's list only; everyone else gets a 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate import administration, removal
from listgate.db import transaction
from listgate.limits import TooLong
from listgate.lists import ListError
from listgate.models import MailingList, Message, Removal
from listgate.threads import resolve
from webarchive.context import db, resources, settings
from webarchive.security import current_address

bp = Blueprint("takedown", __name__)
NOT_YOURS = (
    "the same mail is also archived on another list you do not moderate: its moderators "
    "(or a site administrator) must purge it there, or purge every copy at once"
)


@bp.app_template_global()
def purged(msg: Message) -> bool:
    """Whether a removed post's content was purged too (nothing is left to delete)."""
    row = db().get(Removal, msg.id)
    return row is not None and row.purged


def _moderated(session: Session, message_pk: int) -> tuple[Message, MailingList]:
    """The post and its list when the signed-in person may moderate that list; else 404."""
    msg = session.get(Message, message_pk)
    if msg is None:
        abort(404)
    mlist = session.get(MailingList, msg.list_id)
    if mlist is None or not administration.may_moderate(
        mlist, current_address(), settings().admins
    ):
        abort(404)
    return msg, mlist


@bp.get("/moderation/messages/<id:message_pk>/remove")
def form(message_pk: int) -> str:
    """The takedown form: the post, a reason, and whether to purge it too."""
    msg, mlist = _moderated(db(), message_pk)
    return _form(msg, mlist, "")


def _form(msg: Message, mlist: MailingList, reason: str) -> str:
    """The takedown form, holding reason (or the reason the post was removed with)."""
    return render_template(
        "moderation/remove.html",
        msg=msg,
        mlist=mlist,
        removal=db().get(Removal, msg.id),
        confirm=False,
        reason=reason,
    )


@bp.post("/moderation/messages/<id:message_pk>/remove")
def remove(message_pk: int) -> str | tuple[str, int] | Response:
    """Remove the post (a tombstone keeps its place), or purge it once the moderator confirms."""
    msg, mlist = _moderated(db(), message_pk)
    purge, subject = request.form.get("purge") == "yes", msg.subject or "(no subject)"
    try:
        reason = removal.clean_reason(request.form.get("reason", ""))
        if purge and request.form.get("confirm") != "yes":  # a purge is for good: ask again
            return render_template(
                "moderation/remove.html",
                msg=msg,
                mlist=mlist,
                confirm=True,
                reason=reason,
                removal=db().get(Removal, msg.id),
            )
        with transaction(resources().writer) as session:
            copies = _copies(session, session.get_one(Message, message_pk), purge)
            outcome = removal.remove(session, copies, reason, current_address() or "", purge)
            thread = resolve(session, copies[0].thread_id)
            shown = thread.id if thread is not None and thread.message_count > 0 else None
    except TooLong as exc:  # the form again, holding what was typed
        flash(str(exc), "error")
        return _form(msg, mlist, request.form.get("reason", "")), 400
    except ListError as exc:
        flash(str(exc), "error")
        return redirect(url_for("takedown.form", message_pk=message_pk), 303)
    done = "purged: its raw mail, attachments and text are deleted" if purge else "removed"
    flash(" ".join([f"“{subject}” is {done}; the thread shows why.", *outcome.kept]), "ok")
    if shown is None:  # nothing visible left in the thread
        return redirect(url_for("pages.list_page", name=mlist.name), 303)
    return redirect(url_for("pages.thread", thread_id=shown, _anchor=f"m{message_pk}"), 303)


def _copies(session: Session, msg: Message, purge: bool) -> list[Message]:
    """What to act on: the post; for a purge its copies on other lists too (if ours to moderate)."""
    if not purge:
        return [msg]
    others = list(
        session.scalars(select(Message).where(Message.raw_id == msg.raw_id, Message.id != msg.id))
    )
    admins, address = settings().admins, current_address()
    if any(
        not administration.may_moderate(session.get_one(MailingList, o.list_id), address, admins)
        for o in others
    ):
        raise ListError(NOT_YOURS)
    return [msg, *others]
