"""The moderators' queue: held and reported posts, featuring threads, banning addresses."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate import administration, approvals, ingest, moderation, notposted, store
from listgate.db import transaction
from listgate.limits import REASON, TooLong, problem
from listgate.models import MailingList, Message, NotPosted, OutboxEntry, Subscription
from listgate.models.web import Ban, Report
from listgate.reports import close_reports, restore
from listgate.states import PostState, ReportState
from listgate.status import failed_posts
from listgate.store import lock_list
from listgate.subscriptions import Outcome, SubscriptionError, normalize
from listgate.threads import resolve
from webarchive.context import db, enqueue, resources, settings
from webarchive.security import current_address

bp = Blueprint("moderation", __name__)
P = ParamSpec("P")
R = TypeVar("R")
Owned = TypeVar("Owned", Subscription, NotPosted)  # rows that belong to one list


@bp.app_context_processor
def moderator_flag() -> dict[str, Any]:
    """Whether to show the Moderation link (only ever true for a signed-in moderator)."""
    address = current_address()
    if address is None:
        return {"is_moderator_anywhere": False}
    try:
        return {"is_moderator_anywhere": bool(moderated_lists(address))}
    except SQLAlchemyError:  # the error page for a database outage must still render
        return {"is_moderator_anywhere": False}


def moderated_lists(address: str) -> list[MailingList]:
    """The lists address moderates (as a moderator, an owner or a site administrator)."""
    admins = settings().admins
    query = select(MailingList)
    if not administration.is_admin(admins, address):
        query = query.where((MailingList.moderators != "") | (MailingList.owners != ""))
    return [m for m in db().scalars(query) if administration.may_moderate(m, address, admins)]


def moderator(view: Callable[P, R]) -> Callable[P, R]:
    """Only moderators get past; everyone else sees a 404."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if current_address() is None or not moderated_lists(current_address() or ""):
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def _own_list(session: Session, list_id: int) -> MailingList:
    mlist = session.get(MailingList, list_id)
    if mlist is None or not administration.may_moderate(
        mlist, current_address(), settings().admins
    ):
        abort(404)
    return mlist


def _own_post(session: Session, message_pk: int) -> tuple[Message, MailingList]:
    """The post and its list if this person moderates that list, else 404."""
    msg = session.get(Message, message_pk)
    if msg is None:
        abort(404)
    return msg, _own_list(session, msg.list_id)


def _decided_post(session: Session, message_pk: int) -> tuple[Message, MailingList]:
    """_own_post in a transaction that decides on the post: its list locked first (the order
    every writer of a list takes), then the post read again, so that two moderators deciding at
    once act one after the other and the second sees what the first did."""
    msg, mlist = _own_post(session, message_pk)
    lock_list(session, mlist)
    session.refresh(msg)
    return msg, mlist


def _owned(session: Session, model: type[Owned], pk: int) -> Owned:
    """The row of model with this id if it belongs to a list this person moderates, else 404."""
    row = session.get(model, pk)
    if row is None:
        abort(404)
    _own_list(session, row.list_id)
    return row


@bp.get("/moderation")
@moderator
def queue() -> str:
    """Held, reported and refused posts, requests and mail not posted on the lists one moderates."""
    return _queue({})


def _again(problem: str, kept: dict[str, str]) -> tuple[str, int]:
    """The queue again (a 400) saying what to fix, its form holding what was typed."""
    flash(problem, "error")
    return _queue(kept), 400


def _queue(kept: dict[str, str]) -> str:
    """The queue page; kept: the values typed in its forms, by form ("reject-7", "ban-2"...)."""
    session = db()
    mine = {m.id: m for m in moderated_lists(current_address() or "")}
    held = list(
        session.scalars(
            select(Message)
            .where(Message.list_id.in_(mine), Message.status == PostState.HELD)
            .order_by(Message.received_at)
            .limit(200)
        )
    )
    counts = func.count(Report.id)
    reported = session.execute(
        select(Message, counts)
        .join(Report, Report.message_pk == Message.id)
        .where(Report.list_id.in_(mine), Report.status == ReportState.OPEN)
        .group_by(Message.id)
        .order_by(counts.desc(), Message.id)
        .limit(200)
    ).all()
    pks = [m.id for m, _ in reported]
    reasons: dict[int, list[Report]] = {}
    for rep in session.scalars(
        select(Report).where(Report.message_pk.in_(pks), Report.status == ReportState.OPEN)
    ):
        reasons.setdefault(rep.message_pk, []).append(rep)
    bans = list(
        session.scalars(select(Ban).where(Ban.list_id.in_(mine)).order_by(Ban.created_at.desc()))
    )
    return render_template(
        "moderation/queue.html",
        lists=mine,
        held=held,
        reported=reported,
        reasons=reasons,
        bans=bans,
        failed=failed_posts(session, mine),
        requests=approvals.waiting(session, mine),
        not_posted=notposted.waiting(session, mine),
        kept=kept,
    )


@bp.post("/moderation/subscriptions/<id:sub_id>/approve")
@moderator
def approve_request(sub_id: int) -> Response:
    """Let an address into a private or members-only list; it gets a welcome mail."""
    return _decide(
        sub_id, lambda session, sub: approvals.approve(session, sub, current_address() or "")
    )


@bp.post("/moderation/subscriptions/<id:sub_id>/refuse")
@moderator
def refuse_request(sub_id: int) -> Response | tuple[str, int]:
    """Turn a request down; the address is told, with the reason given."""
    reason = request.form.get("reason", "").strip()
    try:
        return _decide(
            sub_id,
            lambda session, sub: approvals.refuse(session, sub, current_address() or "", reason),
        )
    except TooLong as exc:
        return _again(str(exc), {f"refuse-{sub_id}": reason})


def _decide(sub_id: int, decide: Callable[[Session, Subscription], Outcome]) -> Response:
    with transaction(resources().writer) as session:
        sub = _owned(session, Subscription, sub_id)
        try:
            outcome = decide(session, sub)
        except SubscriptionError as exc:
            abort(409, description=str(exc))
    return _to_queue(outcome.message, outcome.outbox)


def _to_queue(message: str, outbox: list[OutboxEntry] | None = None) -> Response:
    """Send what a decision mailed, say what it did and go back to the queue."""
    enqueue(outbox or [])
    flash(message, "ok")
    return redirect(url_for("moderation.queue"), 303)


@bp.post("/moderation/not-posted/<id:entry_id>/release")
@moderator
def release(entry_id: int) -> Response:
    """Post a mail that was accepted and not posted (an automatic reply, a loop...)."""
    with transaction(resources().writer) as session:
        _owned(session, NotPosted, entry_id)
        try:
            result = ingest.release(
                session,
                entry_id,
                current_address() or "",
                domain=settings().domain,
                fallback_days=settings().subject_fallback_days,
            )
        except LookupError as exc:
            abort(409, description=str(exc))
    return _to_queue(f"The mail is posted ({result.status}).", result.outbox)


_DECIDED = (PostState.REJECTED, PostState.REMOVED)  # what approving or rejecting cannot change


@bp.post("/moderation/messages/<id:message_pk>/approve")
@moderator
def approve(message_pk: int) -> Response:
    """Publish a held post, or put a reported post back."""
    entries = []
    with transaction(resources().writer) as session:
        msg, mlist = _decided_post(session, message_pk)
        if msg.status in _DECIDED:  # from a page shown before: it says what it did, nothing
            return _to_queue(f"“{msg.subject}” was {msg.status} already: nothing more was done.")
        if msg.status == PostState.HELD:
            try:
                entries += moderation.approve(session, mlist, msg, current_address() or "")
            except moderation.ModerationError as exc:  # its author banned since it was held
                abort(409, description=str(exc))
        restore(session, msg)
        close_reports(session, msg.id, ReportState.DISMISSED, current_address() or "")
    return _to_queue(f"“{msg.subject}” is published.", entries)


@bp.post("/moderation/messages/<id:message_pk>/reject")
@moderator
def reject(message_pk: int) -> Response | tuple[str, int]:
    """Reject a held or reported post; the reason is mailed to its author."""
    reason = request.form.get("reason", "").strip()
    if not reason:
        abort(400, description="Please give a reason; it is mailed to the author.")
    _own_post(db(), message_pk)
    if wrong := problem(REASON, reason):
        return _again(wrong, {f"reject-{message_pk}": reason})
    with transaction(resources().writer) as session:
        msg, mlist = _decided_post(session, message_pk)
        if msg.status in _DECIDED:  # a second click, or another moderator first: told once
            return _to_queue(f"“{msg.subject}” was {msg.status} already: nothing more was done.")
        shown = msg.status != PostState.HELD
        entries = moderation.reject(session, mlist, msg, current_address() or "", reason)
    if shown:
        done = (
            f"“{msg.subject}” is taken down: the thread shows the reason where it was, "
            "and its author is told why."
        )
    else:
        done = f"“{msg.subject}” is rejected; its author is told why."
    return _to_queue(done, entries)


@bp.post("/threads/<id:thread_id>/feature")
@moderator
def feature(thread_id: int) -> Response:
    """Pin a thread on top of its list, or unpin it (the thread it merged into, from a page shown
    before the merge)."""
    with transaction(resources().writer) as session:
        thread = resolve(session, thread_id)
        if thread is None:
            abort(404)
        _own_list(session, thread.list_id)
        thread.featured = request.form.get("featured") == "yes"
    flash(
        "This thread is featured." if thread.featured else "This thread is no longer featured.",
        "ok",
    )
    return redirect(url_for("pages.thread", thread_id=thread.id), 303)


@bp.post("/moderation/lists/<id:list_id>/bans")
@moderator
def ban(list_id: int) -> Response | tuple[str, int]:
    """Ban an address from posting to a list (or lift the ban with action=unban)."""
    try:
        address = normalize(request.form.get("address", ""))
    except SubscriptionError as exc:
        abort(400, description=str(exc))
    reason = request.form.get("reason", "")
    _own_list(db(), list_id)
    if wrong := problem(REASON, reason):
        return _again(wrong, {f"ban-{list_id}": reason, f"ban-{list_id}-address": address})
    with transaction(resources().writer) as session:
        mlist = _own_list(session, list_id)
        existing = session.scalars(
            select(Ban).where(Ban.list_id == list_id, Ban.address == address)
        ).first()
        if request.form.get("action") == "unban":
            if existing is not None:
                session.delete(existing)
            message = f"{address} may post to {mlist.name} again."
        else:  # one statement: the same ban sent twice at once (PostgreSQL) is one ban
            session.execute(
                store.of(session)
                .insert(Ban)
                .values(
                    list_id=list_id,
                    address=address,
                    reason=reason,
                    banned_by=current_address() or "",
                )
                .on_conflict_do_nothing(index_elements=[Ban.list_id, Ban.address])
            )
            message = f"{address} is banned from {mlist.name}."
    return _to_queue(message)
