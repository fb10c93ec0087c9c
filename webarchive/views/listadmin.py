"""A list's settings page for its owners and moderators: the fields, the roles, who changed what."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from listgate import administration, dispatch, lists
from listgate.db import transaction
from listgate.limits import TooLong, typed
from listgate.lists import ListError
from listgate.models import MailingList
from listgate.states import ListPolicy, ReplyTo
from webarchive.context import db, enqueue, resources, settings
from webarchive.security import current_address, signed_in

bp = Blueprint("listadmin", __name__)


@bp.app_template_global()
def may_moderate_list(mlist: MailingList) -> bool:
    """Whether the signed-in person sees this list's settings (owners, moderators, site admins)."""
    return administration.may_moderate(mlist, current_address(), settings().admins)


def _list_for(name: str, change: bool = False) -> MailingList:
    """The list if the signed-in person may see (or, with change, change) its settings; else 404."""
    mlist = lists.get(db(), name)
    allowed = administration.may_change if change else administration.may_moderate
    if mlist is None or not allowed(mlist, current_address(), settings().admins):
        abort(404)
    return mlist


@bp.get("/lists/<name>/settings")
@signed_in
def page(name: str) -> str:
    """The settings form (read-only for moderators), owners and moderators, and the audit log."""
    mlist = _list_for(name)
    return _page(mlist, {field: getattr(mlist, field) for field in administration.FIELDS})


def _typed() -> dict[str, object]:
    """The settings as the form sent them (shown again when they cannot be saved)."""
    form = request.form
    return {
        "title": form.get("title", ""),
        "description": typed(form.get("description", "")),
        "policy": form.get("policy"),
        "private": form.get("private") == "yes",
        "reply_to": form.get("reply_to"),
    }


def _page(mlist: MailingList, shown: dict[str, object]) -> str:
    """The settings page, its form holding shown (the list's settings, or what was typed)."""
    return render_template(
        "listadmin/settings.html",
        mlist=mlist,
        shown=shown,
        policies=tuple(ListPolicy),
        reply_tos=tuple(ReplyTo),
        can_change=administration.may_change(mlist, current_address(), settings().admins),
        owners=administration.members_of(mlist, "owner"),
        moderators=administration.members_of(mlist, "moderator"),
        history=administration.history(db(), mlist),
    )


@bp.post("/lists/<name>/settings")
@signed_in
def save(name: str) -> Response | tuple[str, int]:
    """Change the list's settings (owners and site administrators)."""
    mlist = _list_for(name, change=True)
    sent = _typed()
    try:
        with transaction(resources().writer) as session:
            outbox = dispatch.collect(session)  # welcome mails of requests a change lets in
            done = administration.edit(
                session, session.get_one(MailingList, mlist.id), current_address() or "", **sent
            )
    except TooLong as exc:  # the form again, holding what was typed
        flash(str(exc), "error")
        return _page(mlist, sent), 400
    except ListError as exc:
        flash(str(exc), "error")
        return redirect(url_for("listadmin.page", name=name), 303)
    enqueue(outbox)
    flash("Saved: " + "; ".join(done) if done else "Nothing changed.", "ok")
    return redirect(url_for("listadmin.page", name=name), 303)


@bp.post("/lists/<name>/roles")
@signed_in
def roles(name: str) -> Response:
    """Add or remove an owner or moderator (owners and site administrators)."""
    list_id = _list_for(name, change=True).id
    role, action, address = (
        request.form.get("role", ""),
        request.form.get("action", ""),
        request.form.get("address", ""),
    )
    if action not in administration.ROLE_ACTIONS:
        abort(400, description="action must be add or remove")
    try:
        with transaction(resources().writer) as session:
            mlist = session.get_one(MailingList, list_id)
            changed = administration.change_role(
                session, mlist, action, role, address, current_address() or ""
            )
    except ListError as exc:
        flash(str(exc), "error")
        return redirect(url_for("listadmin.page", name=name), 303)
    flash(
        f"{address.strip().lower()} is {'now' if action == 'add' else 'no longer'} a {role}."
        if changed
        else "Nothing changed.",
        "ok",
    )
    return redirect(url_for("listadmin.page", name=name), 303)
