"""Generated mail (confirmations, welcome, goodbye, help, ...) from an outbox payload.

Every notice carries Auto-Submitted and goes out with an empty envelope sender, so
autoresponders and bounces never come back as posts or loops.
"""

from __future__ import annotations

import email.policy
import textwrap
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from listgate import plurals
from listgate.config import Settings
from listgate.mail import mime
from listgate.mail.names import LOOP_HEADER
from listgate.states import SubscriptionKind
from listgate.subscriptions import unsubscribe_token

# Long command addresses (NAME+confirm-CODE@) stay on one line instead of being folded.
POLICY = email.policy.SMTP.clone(max_line_length=200)


class NoticeError(ValueError):
    """A payload naming an unknown template or lacking a recipient."""


def texts(p: dict[str, Any], s: Settings) -> dict[str, tuple[str, str]]:
    """Each kind of notice's (Subject, text) for the payload p."""
    name = p.get("list", "")
    addr = f"{name}@{s.domain}"
    thread = _thread_words(p, s)
    return {
        "confirm": (
            f"Confirm your subscription to{thread} {name}",
            f"Someone (hopefully you) asked to subscribe {p.get('to')} to{thread} "
            f"the list {addr}.\n\n"
            f"To confirm, open this link:\n\n  {p.get('link', '')}\n\n"
            "or simply reply to this mail. If you did not ask for this, ignore this mail:\n"
            "nothing will be sent to you.\n",
        ),
        "welcome": (
            f"Welcome to{thread} {name}",
            f"You are now subscribed to{thread} {addr}.\n\nPost by writing to {addr}.\n"
            f"The archive: {s.base_url}/lists/{name}/\n{_leave_words(p, s)}",
        ),
        "goodbye": (
            f"You have left {name}",
            f"{p.get('to')} no longer gets mail from {addr}.\n"
            f"To come back, write to {name}+subscribe@{s.domain}.\n",
        ),
        "changed": (
            f"Done: your mail from {name}",
            f"{p.get('message', '')}\n{_thread_link(p, s)}{_digest_words(p, s)}\n"
            f"To see everything you get from {name}: {s.base_url}/me/subscriptions\n",
        ),
        "awaiting": (
            f"Your subscription to {name} awaits approval",
            f"{p.get('to')} is confirmed. A moderator of {addr} must approve your subscription;\n"
            "you will get a mail when they have.\n",
        ),
        "refused": (
            f"Your subscription to {name} was not approved",
            f"The moderators of {addr} did not approve the subscription of {p.get('to')}.\n"
            + (f"\nReason: {p['reason']}\n" if p.get("reason") else ""),
        ),
        "failed": (
            f"Your request to {name} could not be carried out",
            f"Your {p.get('command') or 'mail'} request to {name} failed "
            "because of an error on our side.\n"
            f"It has been logged with the reference {p.get('reference', '')}. "
            "Please try again later,\n"
            "or tell the list's administrators and give them that reference.\n",
        ),
        # A mail command refused: what the sender asked (from its address) and why, never a
        # word of their mail.
        "not_done": (
            f"Your {p.get('command', '')} request to {name} was not carried out",
            f"Your {p.get('command', '')} request to {addr} was not carried out:\n\n{_why(p)}\n\n"
            f"For the commands of {addr}, write to {name}+help@{s.domain}\n",
        ),
        "suspended": (
            f"Your subscription to{thread} {name} is suspended",
            f"Mail from{thread} {addr} to {p.get('to')} kept bouncing, so we stopped sending it.\n"
            f"When your mailbox works again, {_resume_words(p, s)}",
        ),
        "help": (
            f"Help for {name}",
            f"Commands for the list {addr}:\n\n{_commands(name, s)}\n"
            "In a reply to a list mail, a body of just one word acts on that thread:\n"
            "  follow       get every post of this thread\n"
            "  mute         get no more posts of this thread\n"
            "  unsubscribe  leave this thread\n\n"
            f"The archive: {s.base_url}/lists/{name}/\n",
        ),
        # The sender may be forged: nothing they wrote (not even the Subject) is sent back.
        "held": (
            f"Your post to {name} awaits moderation",
            f"A message from you to {addr} (received {p.get('received', '')}) "
            "is held until a moderator\n"
            "approves it.\n",
        ),
        "rejected": (
            f"Your mail to {name} was not accepted",
            f'Your message "{p.get("subject", "")}" to {addr} was not accepted.\n\n'
            f"Reason: {p.get('reason', 'not given')}\n",
        ),
        "moderate": (
            f"{name}: a post awaits moderation: {p.get('subject', '')}",
            f"A post to {addr} is held: {p.get('reason', '')}.\n\n"
            f"  From:    {p.get('from', '')}\n  Subject: {p.get('subject', '')}\n\n"
            "It is attached to this mail.\n\n"
            f"To approve it, send any mail to:\n  {p.get('approve', '')}\n"
            f"  (mailto:{p.get('approve', '')}?subject=approve)\n\n"
            "To reject it, reply to this mail with one line:\n  reject: REASON\n"
            "The reason is sent to the author. Each address works once.\n\n"
            f"Or use the moderation page: {p.get('link', '')}\n",
        ),
        "report": (
            f"{name}: a post was reported: {p.get('subject', '')}",
            f"A reader reported a post on {addr}.\n\n  From:    {p.get('from', '')}\n"
            f"  Subject: {p.get('subject', '')}\n  Reason:  {p.get('reason', '')}\n\n"
            f"The post: {p.get('post', '')}\nIt is attached to this mail.\n\n"
            f"Act on it on the moderation page: {p.get('link', '')}\n",
        ),
        "reminder": (
            f"{name}: {plurals.count(int(p.get('count', 0)), 'post')} still "
            f"{'awaits' if p.get('count') == 1 else 'await'} moderation",
            f"{'This post' if p.get('count') == 1 else 'These posts'} to {addr} "
            f"{'is' if p.get('count') == 1 else 'are'} still held:\n\n{p.get('posts', '')}\n\n"
            "Send any mail to an approve address to publish that post; to reject one, write\n"
            '"reject: REASON" to its reject address.\n\n'
            f"The moderation page: {p.get('link', '')}\n",
        ),
        "digest_reply": (
            f"Your reply to the {name} digest is held",
            f"Your message answers the {name} digest ({p.get('period', '')}) as a whole, and we\n"
            "could not tell which of its posts you meant, so it is held.\n\n"
            "Please send it again using the reply link of that post in the digest's table of\n"
            "contents, or change the subject to the post's subject (Re: ...) and quote the part\n"
            "you answer.\n",
        ),
        "signin": (
            "Your sign-in link",
            f"Open this link to sign in (it works once, for one hour):\n\n  {p.get('link', '')}\n\n"
            "If you did not ask for it, ignore this mail.\n",
        ),
    }


def _subject_and_body(t: str, p: dict[str, Any], s: Settings) -> tuple[str, str]:
    found = texts(p, s).get(t)
    if found is None:
        raise NoticeError(f"unknown notice template {t!r}")
    return found


def _commands(name: str, s: Settings) -> str:
    """The list's command addresses, what each does beside it (in one column)."""
    rows = [
        ("subscribe", "subscribe (you will be asked to confirm)"),
        ("unsubscribe", "leave the list"),
        ("help", "this help"),
        ("digest-daily", "a daily digest (also -weekly, and -off for every post)"),
    ]
    width = max(len(f"{name}+{command}@{s.domain}") for command, _ in rows)
    return "".join(f"  {f'{name}+{c}@{s.domain}':<{width}}  {what}\n" for c, what in rows)


def _why(p: dict[str, Any]) -> str:
    """Why a command was not carried out, set off from the sentence announcing it."""
    return textwrap.indent(str(p.get("why", "")).strip() or "it could not be understood", "  ")


def _thread_words(p: dict[str, Any], s: Settings) -> str:
    """' the thread "SUBJECT" on' for thread notices; no subject in replies nobody authenticated."""
    if p.get("kind") != SubscriptionKind.THREAD:
        return ""
    quoted = p.get("subject") and not (p.get("reply") and not p.get("authenticated"))
    return f' the thread "{p["subject"]}" on' if quoted else " a thread on"


def _digest_words(p: dict[str, Any], s: Settings) -> str:
    """After a switch between every post and the digest: how to switch again by mail."""
    if p.get("action") not in ("digest", "list"):
        return ""
    name = p.get("list", "")
    return (
        f"To change it, write to {name}+digest-daily@{s.domain}, {name}+digest-weekly@{s.domain}\n"
        f"or {name}+digest-off@{s.domain} (every post).\n"
    )


def _resume_words(p: dict[str, Any], s: Settings) -> str:
    """How a subscription suspended by bounces comes back as it was: by mail for every post or
    the digest (NAME+subscribe@ resumes a suspended digest), on the web for a thread (by mail,
    subscribe is to the whole list)."""
    web = f"press Resume my mail on this page:\n\n  {s.base_url}/me/subscriptions\n"
    if p.get("kind") == SubscriptionKind.THREAD:
        return f"to resume, {web}"
    return (
        f"write to {p.get('list', '')}+subscribe@{s.domain} to resume (you will be asked to"
        f" confirm),\nor {web}"
    )


def _thread_link(p: dict[str, Any], s: Settings) -> str:
    return f"The thread: {s.base_url}/threads/{p['thread_id']}\n" if p.get("thread_id") else ""


def _leave_words(p: dict[str, Any], s: Settings) -> str:
    """How to leave, with the person's own link: a thread's leaves only that thread."""
    name, thread_id = (
        p.get("list", ""),
        int(p.get("thread_id") or 0) if p.get("kind") == SubscriptionKind.THREAD else 0,
    )
    link = ""
    if p.get("list_id"):
        token = unsubscribe_token(s.secret_key, int(p["list_id"]), str(p.get("to", "")), thread_id)
        link = f"{s.base_url}/unsubscribe/{token}"
    if thread_id:
        return (
            f"{_thread_link(p, s)}To stop getting this thread, open {link}\n"
            "or reply to any of its mails with the one word: unsubscribe\n"
        )
    # the link ends its line: a mail reader would take a "," after it for part of it
    return (
        f"To leave, write to {name}+unsubscribe@{s.domain}\n"
        + (f"or open {link}\n" if link else "")
        + "or use the link in any list mail.\n"
    )


def render(
    payload: dict[str, Any], settings: Settings, attachment: bytes = b""
) -> tuple[str, bytes]:
    """(recipient, message bytes) for a notice payload; attachment: a mail to attach (rfc822)."""
    to = str(payload.get("to", "")).strip()
    if "@" not in to:
        raise NoticeError(f"notice without a recipient: {payload.get('template')!r}")
    template = str(payload.get("template", ""))
    subject, body = _subject_and_body(template, payload, settings)
    name = payload.get("list", "")
    msg = EmailMessage(policy=POLICY)
    sender = f"{name}+help@{settings.domain}" if name else f"noreply@{settings.domain}"
    msg["From"] = formataddr((f"{name} list" if name else "listgate", sender))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid("notice", domain=settings.domain)
    msg["Auto-Submitted"] = "auto-replied" if payload.get("reply") else "auto-generated"
    msg["Precedence"] = "bulk"
    msg[LOOP_HEADER] = settings.domain
    if payload.get("reply_to"):
        msg["Reply-To"] = str(payload["reply_to"])
    if name:
        msg["List-Id"] = f"<{name}.{settings.domain}>"
    msg.set_content(body)
    if attachment:
        msg.add_attachment(mime.message(attachment))
    return to, msg.as_bytes()
