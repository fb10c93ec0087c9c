"""Writing from the web: the text becomes a real mail from the signed-in person, then ingested.

Each form carries a key of its own; the post's Message-ID is made from it, the author's address
and the words sent, so the same form sent twice (a double click, a resend after a slow answer)
is one post, and the second answer is the first one's again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from listgate.bans import is_banned
from listgate.db import transaction
from listgate.ingest import DUPLICATE, HELD_FOR_MODERATION, STORED, IngestResult, ingest
from listgate.limits import BODY, SUBJECT, TooLong, suggested, typed, within
from listgate.mail.parser import parse
from listgate.models import MailingList, Message, Person
from listgate.replies import reply_subject
from listgate.states import PostOrigin, PostState
from listgate.store import lock_list
from webarchive.context import db, enqueue, resources, settings
from webarchive.ratelimit import limit
from webarchive.reading.access import readable_list, readable_message
from webarchive.security import current_address, signed_in

log = logging.getLogger(__name__)
bp = Blueprint("compose", __name__)


def build_mail(
    *,
    sender: str,
    name: str,
    to: str,
    subject: str,
    body: str,
    domain: str,
    parent: Message | None = None,
    message_id: str = "",
) -> bytes:
    """An RFC 5322 message with Message-ID (message_id, or a new one), and In-Reply-To/References
    when replying."""
    mail = EmailMessage()
    mail["From"] = formataddr((name, sender)) if name else sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<{message_id}>" if message_id else make_msgid(domain=domain)
    if parent is not None:
        refs = [r for r in parent.references.split() if r] + [parent.message_id]
        mail["In-Reply-To"] = f"<{parent.message_id}>"
        mail["References"] = " ".join(f"<{r}>" for r in refs[-30:])
    mail["User-Agent"] = "listgate web archive"
    mail.set_content(body.replace("\r\n", "\n"), cte="quoted-printable")
    return bytes(mail)


def quote_text(msg: Message) -> str:
    """The parent's text quoted, under an attribution line."""
    lines = msg.body_text.rstrip().split("\n")
    cut = lines.index("-- ") if "-- " in lines else len(lines)
    quoted = "\n".join("> " + line if line else ">" for line in lines[:cut][:200])
    return f"{msg.from_name or 'Someone'} wrote:\n{quoted}\n\n"


_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
# What a form sent again is told: what became of the post the first time.
_AGAIN = {PostState.VISIBLE: STORED, PostState.HELD: HELD_FOR_MODERATION}


def form_key() -> str:
    """A new form's key (the same form sent twice is one post)."""
    return secrets.token_urlsafe(18)


def post_message_id(address: str, key: str, domain: str, subject: str, text: str) -> str:
    """The Message-ID of the post a form with this key and these words makes for address ('' for
    no key): the same form sent again names the same post, the form changed and sent again (the
    browser's Back, other words) another one.

    Keyed with the site's secret: a key typed by hand names no one else's post.
    """
    if not _KEY.fullmatch(key):
        return ""
    digest = hmac.new(
        settings().secret_key.encode(),
        "\n".join((address, key, subject, text)).encode(),
        hashlib.sha256,
    ).hexdigest()
    return f"web.{digest[:32]}@{domain}"


def _sent_before(session: Session, mlist: MailingList, message_id: str) -> IngestResult | None:
    """The answer to this form the first time it was sent, or None when it was not."""
    found = session.execute(
        select(Message.id, Message.thread_id, Message.status).where(
            Message.list_id == mlist.id, Message.message_id == message_id
        )
    ).first()
    if found is None:
        return None
    status = _AGAIN.get(found.status, DUPLICATE)
    return IngestResult(status, mlist.name, found.id, found.thread_id, "it was sent already")


def send(
    mlist: MailingList, subject: str, text: str, parent: Message | None, key: str = ""
) -> IngestResult:
    """Build, ingest and enqueue one web post (once per form key); returns the IngestResult."""
    address = current_address() or ""
    s = settings()
    message_id = post_message_id(address, key, s.domain, subject, text)
    with transaction(resources().writer) as session:
        mlist = session.get_one(MailingList, mlist.id)
        if is_banned(session, mlist.id, address):
            abort(403, description="You may not post to this list.")
        if message_id:
            lock_list(session, mlist)  # first, as ingest takes it: one of two sends goes in
            again = _sent_before(session, mlist, message_id)
            if again is not None:
                log.info("web post by %s on %s sent again: %s", address, mlist.name, message_id)
                return again
        person = session.get(Person, address)
        raw = build_mail(
            sender=address,
            name=person.name if person else "",
            to=mlist.address(s.domain),
            subject=subject,
            body=text,
            domain=s.domain,
            parent=parent,
            message_id=message_id,
        )
        result = ingest(
            session,
            parse(raw),
            mlist,
            domain=s.domain,
            origin=PostOrigin.WEB,
            envelope_from=address,
            fallback_days=s.subject_fallback_days,
        )
    enqueue(result.outbox)
    log.info("web post by %s on %s: %s", address, mlist.name, result.status)
    return result


def _validated() -> tuple[str, str]:
    """The subject and text as typed, whole; TooLong naming the field past its limit."""
    subject = " ".join(request.form.get("subject", "").split())
    text = typed(request.form.get("body", ""))
    if not subject or not text.strip():
        abort(400, description="Please write a subject and some text.")
    return within(SUBJECT, subject), within(BODY, text)


def _form(mlist: MailingList, parent: Message | None, problem: str = "") -> tuple[str, int]:
    """The form again with what was typed, and why it was not sent (a 400)."""
    flash(problem, "error")
    return render_template(
        "compose/form.html",
        mlist=mlist,
        parent=parent,
        subject=request.form.get("subject", ""),
        body=request.form.get("body", ""),
        key=request.form.get("key", "") or form_key(),
    ), 400


def _after(result: IngestResult, mlist: MailingList) -> Response:
    if result.status == STORED:
        flash("Your post is in the archive and on its way to the subscribers.", "ok")
        return redirect(
            url_for("pages.thread", thread_id=result.thread_id) + f"#m{result.message_pk}", 303
        )
    held = result.status == HELD_FOR_MODERATION
    flash(
        "Your post is waiting for a moderator."
        if held
        else f"Your post was not accepted: {result.reason}.",
        "ok" if held else "error",
    )
    return redirect(url_for("pages.list_page", name=mlist.name), 303)


@bp.route("/messages/<id:message_pk>/reply", methods=["GET", "POST"])
@signed_in
def reply(message_pk: int) -> str | tuple[str, int] | Response:
    """Reply to a post from the web."""
    parent = readable_message(db(), message_pk)
    mlist = db().get_one(MailingList, parent.list_id)
    if request.method == "GET":
        # the subject of a mail may be longer than a web post's: the form proposes one that fits
        subject = " ".join(reply_subject(parent.subject).split())
        return render_template(
            "compose/form.html",
            mlist=mlist,
            parent=parent,
            subject=suggested(SUBJECT, subject),
            shortened=len(subject) > SUBJECT.chars,
            body=quote_text(parent),
            key=form_key(),
        )
    try:
        subject, text = _validated()
    except TooLong as exc:
        return _form(mlist, parent, str(exc))
    limit("post", current_address() or "")
    return _after(send(mlist, subject, text, parent, request.form.get("key", "")), mlist)


@bp.route("/lists/<name>/new", methods=["GET", "POST"])
@signed_in
def new_thread(name: str) -> str | tuple[str, int] | Response:
    """Start a thread from the web."""
    mlist = readable_list(db(), name)
    if request.method == "GET":
        return render_template(
            "compose/form.html", mlist=mlist, parent=None, subject="", body="", key=form_key()
        )
    try:
        subject, text = _validated()
    except TooLong as exc:
        return _form(mlist, None, str(exc))
    limit("post", current_address() or "")
    return _after(send(mlist, subject, text, None, request.form.get("key", "")), mlist)
