"""What signed-in readers do: vote, report, follow threads and lists, manage subscriptions."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate import confirmations, moderation, store, subscriptions
from listgate.confirmations import RateLimited
from listgate.db import transaction
from listgate.limits import REASON, problem, typed
from listgate.models import MailingList, Message, Person, Subscription, Thread
from listgate.models.archive import utcnow
from listgate.models.web import Report, Vote
from listgate.reports import hide, open_reports
from listgate.states import DigestFrequency, ReportState, SubscriptionKind, SubscriptionState
from listgate.store import lock_list
from listgate.subscriptions import SubscriptionError
from webarchive.context import db, enqueue, resources, settings
from webarchive.ratelimit import client_ip, limit
from webarchive.reading.access import readable_list, readable_message, readable_thread
from webarchive.security import current_address, signed_in

bp = Blueprint("acting", __name__)


def _back_to(msg: Message) -> Response:
    return redirect(url_for("pages.thread", thread_id=msg.thread_id) + f"#m{msg.id}", 303)


@bp.post("/messages/<id:message_pk>/vote")
@signed_in
def vote(message_pk: int) -> Response:
    """Say whether a post was valuable (one answer per person, changeable)."""
    address = current_address()
    readable_message(db(), message_pk)
    choice = request.form.get("valuable")
    if choice not in ("yes", "no"):
        abort(400, description="valuable must be yes or no")
    limit("vote", address or "")
    with transaction(resources().writer) as session:
        msg = session.get_one(Message, message_pk)
        # one statement: the same click sent twice at once (PostgreSQL) is one vote, the latest
        stmt = (
            store.of(session)
            .insert(Vote)
            .values(message_pk=message_pk, address=address, valuable=choice == "yes")
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Vote.message_pk, Vote.address],
                set_={"valuable": stmt.excluded.valuable, "updated_at": utcnow()},
            )
        )
    return _back_to(msg)


@bp.route("/messages/<id:message_pk>/report", methods=["GET", "POST"])
@signed_in
def report(message_pk: int) -> str | tuple[str, int] | Response:
    """Report a post to the list's moderators, with a reason."""
    msg = readable_message(db(), message_pk)
    if request.method == "GET":
        return render_template("acting/report.html", msg=msg, reason="")
    reason = typed(request.form.get("reason", "")).strip()
    wrong = problem(REASON, reason) if reason else "Please say what is wrong with this post."
    if wrong:  # the form again, holding what was typed
        flash(wrong, "error")
        return render_template("acting/report.html", msg=msg, reason=reason), 400
    address = current_address() or ""
    limit("report", address)
    with transaction(resources().writer) as session:
        msg = session.get_one(Message, message_pk)
        # the list's lock, then the post as it is now: reports at once that each reach the
        # threshold hide the post (and take it out of the counts) once
        lock_list(session, session.get_one(MailingList, msg.list_id))
        session.refresh(msg)
        # the row first, in one statement that waits for the same report sent at once (PostgreSQL)
        made = session.execute(
            store.of(session)
            .insert(Report)
            .values(message_pk=msg.id, list_id=msg.list_id, address=address, reason=reason)
            .on_conflict_do_nothing(index_elements=[Report.message_pk, Report.address])
            .returning(Report.id)
        ).first()
        row = session.scalars(
            select(Report)
            .where(Report.message_pk == msg.id, Report.address == address)
            .with_for_update()
        ).one()
        fresh = made is not None or row.status != ReportState.OPEN  # the moderators hear by mail
        if made is None and fresh:  # dealt with before, the post kept: a new report of it as it is
            row.status, row.created_at, row.resolved_at, row.resolved_by = (
                ReportState.OPEN,
                utcnow(),
                None,
                "",
            )
        row.reason = reason  # still open: the moderators read the newest reason
        session.flush()
        mail = [moderation.report_recorded(session, row)] if fresh else []
        hidden = open_reports(session, msg.id) >= settings().report_threshold
        if hidden:
            hide(session, msg)
    enqueue(mail)
    flash(
        "Thank you. The moderators will look at this post."
        + (" It is hidden until they do." if hidden else ""),
        "ok",
    )
    return (
        _back_to(msg)
        if not hidden
        else redirect(url_for("pages.thread", thread_id=msg.thread_id), 303)
    )


@bp.post("/threads/<id:thread_id>/follow")
def follow_thread(thread_id: int) -> Response:
    """Follow a thread by mail: at once when signed in, by double opt-in otherwise."""
    thread = readable_thread(db(), thread_id)
    address = current_address()
    if not address:
        limit("signin-ip", client_ip())  # confirmation mail goes out: limited like sign-in links
        return _act(
            thread.list_id,
            _to_thread(thread),
            lambda session, mlist: _request(session, mlist, SubscriptionKind.THREAD, thread.id),
        )
    return _change_thread(thread, address, subscriptions.FOLLOW)


def _thread_action(action: str) -> Callable[[int], Response]:
    """A signed-in person's unfollow, mute or unmute of a thread."""

    def view(thread_id: int) -> Response:
        return _change_thread(readable_thread(db(), thread_id), current_address() or "", action)

    view.__name__ = f"{action.replace('-', '_')}_thread"
    view.__doc__ = f"{action.capitalize()} a thread."
    return signed_in(view)


bp.add_url_rule(
    "/threads/<id:thread_id>/unfollow",
    "unfollow_thread",
    _thread_action(subscriptions.LEAVE_THREAD),
    methods=["POST"],
)
bp.add_url_rule(
    "/threads/<id:thread_id>/mute",
    "mute_thread",
    _thread_action(subscriptions.MUTE),
    methods=["POST"],
)
bp.add_url_rule(
    "/threads/<id:thread_id>/unmute",
    "unmute_thread",
    _thread_action(subscriptions.UNMUTE),
    methods=["POST"],
)


def _to_thread(thread: Thread) -> str:
    return url_for("pages.thread", thread_id=thread.id)


def _change_thread(thread: Thread, address: str, action: str) -> Response:
    """A signed-in person's change of what they get of a thread, through _act."""
    return _act(
        thread.list_id,
        _to_thread(thread),
        lambda session, mlist: subscriptions.change(
            session, mlist, address, action, thread_id=thread.id, channel=subscriptions.WEB
        ),
    )


def _act(
    list_id: int, back: str, action: Callable[[Session, MailingList], subscriptions.Outcome]
) -> Response:
    """Run action(session, list) in one write transaction; flash what it did and go back."""
    try:
        with transaction(resources().writer) as session:
            outcome = action(session, session.get_one(MailingList, list_id))
    except RateLimited as exc:
        abort(429, description=str(exc), retry_after=exc.retry_after)
    except SubscriptionError as exc:
        flash(str(exc), "error")
        return redirect(back, 303)
    enqueue(outcome.outbox)
    flash(outcome.message, "ok")
    return redirect(back, 303)


def _request(
    session: Session, mlist: MailingList, kind: str, thread_id: int = 0
) -> subscriptions.Outcome:
    s = settings()
    return confirmations.request(
        session,
        mlist,
        request.form.get("address", ""),
        secret=s.secret_key,
        base_url=s.base_url,
        domain=s.domain,
        kind=kind,
        thread_id=thread_id,
    )


@bp.post("/lists/<name>/subscribe")
def subscribe_list(name: str) -> Response:
    """Subscribe to a list (or its digest): at once when signed in, by double opt-in otherwise."""
    mlist = readable_list(db(), name)
    digest = request.form.get("kind") == SubscriptionKind.DIGEST
    kind = SubscriptionKind.DIGEST if digest else SubscriptionKind.LIST
    address = current_address()
    back = url_for("pages.list_page", name=mlist.name)
    if not address:
        limit("signin-ip", client_ip())
        return _act(mlist.id, back, lambda session, m: _request(session, m, kind))
    return _act(
        mlist.id,
        back,
        lambda session, m: subscriptions.change(
            session, m, address, kind, channel=subscriptions.WEB
        ),
    )


@bp.get("/me/subscriptions")
@signed_in
def my_subscriptions() -> str:
    """Every list and thread the signed-in person gets mail from (or asked to)."""
    session = db()
    rows = session.execute(
        select(Subscription, MailingList, Thread)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .outerjoin(Thread, Thread.id == Subscription.thread_key)
        .where(
            Subscription.address == current_address(),
            Subscription.status != SubscriptionState.ENDED,
        )
        .order_by(MailingList.name, Subscription.kind, Subscription.id)
    ).all()
    person = session.get(Person, current_address())
    return render_template(
        "acting/subscriptions.html", rows=rows, auto_follow=person is None or person.auto_follow
    )


# The dashboard's buttons, as actions of subscriptions.change: "leave" depends on the row's kind;
# "digest" and "weekly" ask for the daily or the weekly digest; "resume" (a row suspended by
# bounces) asks again for what the row gets: every post, the digest at its frequency, the thread.
_DASHBOARD = {
    ("leave", SubscriptionKind.LIST): subscriptions.LEAVE,
    ("leave", SubscriptionKind.DIGEST): subscriptions.LEAVE,
    ("resume", SubscriptionKind.LIST): subscriptions.EVERY_POST,
    ("resume", SubscriptionKind.DIGEST): subscriptions.DIGEST,
    ("resume", SubscriptionKind.THREAD): subscriptions.FOLLOW,
    ("leave", SubscriptionKind.THREAD): subscriptions.LEAVE_THREAD,
    ("leave", SubscriptionKind.MUTE): subscriptions.UNMUTE,
    ("list", SubscriptionKind.DIGEST): subscriptions.EVERY_POST,
    **{
        (button, kind): subscriptions.DIGEST
        for button in ("digest", "weekly")
        for kind in (SubscriptionKind.LIST, SubscriptionKind.DIGEST)
    },
}


@bp.post("/me/subscriptions/<id:sub_id>")
@signed_in
def change_subscription(sub_id: int) -> Response:
    """Leave, unfollow, unmute, switch between every post and the daily or weekly digest, or
    resume mail suspended by bounces."""
    address = current_address() or ""
    with transaction(resources().writer) as session:
        sub = session.get(Subscription, sub_id)
        if sub is None or sub.address != address:
            abort(404)
        button = request.form.get("action", "")
        action = _DASHBOARD.get((button, sub.kind))
        if action is None:
            abort(400, description="unknown action")
        mlist = session.get_one(MailingList, sub.list_id)
        outcome = subscriptions.change(
            session,
            mlist,
            address,
            action,
            thread_id=sub.thread_key,
            channel=subscriptions.WEB,
            frequency=_frequency(button, sub),
        )
    enqueue(outcome.outbox)
    flash(outcome.message, "ok")
    return redirect(url_for("acting.my_subscriptions"), 303)


@bp.post("/me/settings")
@signed_in
def my_settings() -> Response:
    """Change whether posting in a thread follows it."""
    with transaction(resources().writer) as session:
        subscriptions.person_settings(
            session, current_address() or "", auto_follow=request.form.get("auto_follow") == "yes"
        )
    flash("Saved.", "ok")
    return redirect(url_for("acting.my_subscriptions"), 303)


def _frequency(button: str, sub: Subscription) -> DigestFrequency:
    """The digest a dashboard button asks for: weekly, the row's own (resume), else daily."""
    if button == "resume":
        return sub.digest_frequency
    return DigestFrequency.WEEKLY if button == "weekly" else DigestFrequency.DAILY
