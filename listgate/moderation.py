"""Moderation by mail: who hears of held posts and reports, and the approve/reject reply addresses.

A held post mails its list's moderators once (the outbox entry is written with the post),
with two addresses: NAME+approve-CODE@ and NAME+reject-CODE@. Each CODE is an HMAC of the
action and the post, so it cannot be guessed or turned into the other; it works once, since
it acts only on a post that is still held. A reply to the reject address whose first line
is "reject: REASON" rejects with that reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable

from sqlalchemy.orm import Session

from listgate import administration, bans, dispatch, limits, removal
from listgate.models import MailingList, Message, OutboxEntry, Report
from listgate.numerals import hex_id
from listgate.policy import publish
from listgate.states import PostState
from listgate.store import lock_list

APPROVE, REJECT = "approve", "reject"
_REJECT_LINE = re.compile(r"^\s*reject\b\s*:?\s*(.*)$", re.IGNORECASE)
# a client's line above the quote
_ATTRIBUTION = re.compile(r"^(On .+ wrote:|.+ schrieb:|.+ a écrit :?)$")


class ModerationError(ValueError):
    """A moderation reply that cannot be acted on; the message says why."""


def recipients(mlist: MailingList, admins: Iterable[str]) -> list[str]:
    """Who acts on this list's held posts and reports: moderators, else owners, else site admins."""
    for group in (
        mlist.moderator_addresses(),
        mlist.owner_addresses(),
        {a.lower() for a in admins},
    ):
        if group:
            return sorted(group)
    return []


def code(secret: str, action: str, msg: Message) -> str:
    """The code in NAME+ACTION-CODE@ for one held post (lower-case, VERP-safe, short)."""
    digest = hmac.new(
        secret.encode(), f"moderate:{action}:{msg.id}:{msg.message_id}".encode(), hashlib.sha256
    ).digest()
    return f"{msg.id:x}." + base64.b32encode(digest).decode()[:12].lower()


def address(secret: str, action: str, msg: Message, mlist: MailingList, domain: str) -> str:
    """The reply address that approves or rejects msg."""
    return f"{mlist.name}+{action}-{code(secret, action, msg)}@{domain}"


def held_message(
    session: Session, secret: str, mlist: MailingList, action: str, given: str
) -> Message:
    """The held post a code names; ModerationError if forged, for another list, or dealt with."""
    pk = hex_id(given.partition(".")[0])
    msg = session.get(Message, pk) if pk is not None else None
    if (
        msg is None
        or msg.list_id != mlist.id
        or not hmac.compare_digest(code(secret, action, msg), given.lower())
    ):
        raise ModerationError("this moderation address is not valid")
    # two moderators answering at once decide one after the other: the list first (the order of
    # every writer of a list), then the post as the first left it
    lock_list(session, mlist)
    session.refresh(msg)
    if msg.status != PostState.HELD:
        raise ModerationError(
            f'the post "{msg.subject}" was already dealt with (it is {msg.status} now)'
        )
    return msg


def reject_reason(body: str) -> str | None:
    """REASON from a reply's first own line ("reject: REASON"); None if it is no rejection."""
    for line in body.splitlines():
        if not line.strip() or line.lstrip().startswith(">") or _ATTRIBUTION.match(line.strip()):
            continue
        match = _REJECT_LINE.match(line)
        if match is None:
            return None
        return match.group(1).strip() or "rejected by the moderators"
    return None


def approve(session: Session, mlist: MailingList, msg: Message, actor: str) -> list[OutboxEntry]:
    """Publish a held post; its fan-out is queued. ModerationError when its author was banned from
    the list since it was held (the approve address went out before the ban, or the queue was
    shown before it): the post stays held, to be rejected, or approved once the ban is lifted."""
    if bans.is_banned(session, mlist.id, msg.from_addr or ""):
        raise ModerationError(
            f"{msg.from_addr} is banned from posting to {mlist.name}, so the post "
            f'"{msg.subject}" stays held: reject it, or lift the ban first to publish it'
        )
    administration.record(session, mlist, actor, "approve message", f"<{msg.message_id}>")
    return [publish(session, msg)]


def reject(
    session: Session, mlist: MailingList, msg: Message, actor: str, reason: str
) -> list[OutboxEntry]:
    """Reject a held post, or take down one already published (reported, say): its tombstone
    keeps its place in the thread, as a removal's does. Its author is told why; TooLong for a
    reason past its limit."""
    limits.within(limits.REASON, reason)
    if msg.status == PostState.HELD:
        msg.status = PostState.REJECTED
        administration.record(
            session, mlist, actor, "reject message", f"<{msg.message_id}>: {reason}"
        )
    else:  # shown before: linked to, answered, mailed out
        removal.remove(session, [msg], reason, actor)
    if not msg.from_addr:
        return []
    return [
        dispatch.record(
            session,
            dispatch.SEND_NOTICE,
            msg.id,
            {
                "template": "rejected",
                "to": msg.from_addr,
                "list": mlist.name,
                "subject": msg.subject,
                "reason": reason,
            },
        )
    ]


def by_mail(
    session: Session,
    secret: str,
    mlist: MailingList,
    action: str,
    given: str,
    sender: str,
    body: str,
) -> list[OutboxEntry]:
    """Act on a mail to NAME+approve-CODE@ or NAME+reject-CODE@; ModerationError says why not."""
    msg = held_message(session, secret, mlist, action, given)
    if action == APPROVE:
        return approve(session, mlist, msg, f"mail:{sender}")
    reason = reject_reason(body)
    if reason is None:
        raise ModerationError("to reject, reply with one line:\n  reject: REASON")
    try:
        return reject(session, mlist, msg, f"mail:{sender}", reason)
    except limits.TooLong:  # the web's limit, said as a mail can say it
        raise ModerationError(
            f"the {limits.REASON.field} is {limits.excess(limits.REASON, reason)}.\n"
            "The post is still held: to reject it, reply again with a shorter line:\n"
            "  reject: REASON"
        ) from None


def report_recorded(session: Session, report: Report) -> OutboxEntry:
    """Queue the moderators' mail about a new report, in the report's own transaction."""
    return dispatch.record(
        session,
        dispatch.NOTIFY_MODERATORS,
        report.message_pk,
        {"event": "report", "reason": report.reason, "report_id": report.id},
    )
