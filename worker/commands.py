"""Mail commands: NAME+subscribe/unsubscribe/help/digest-CHOICE/confirm-CODE@, moderators'
NAME+approve/reject-CODE@, and follow/mute/unsubscribe replies.

Every answer is an automatic reply to an address nobody authenticated (RFC 3834): it goes
through the notice path, which sends at most one per sender per window.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from listgate import administration, confirmations, lists, moderation, subscriptions
from listgate.config import Settings
from listgate.confirmations import RateLimited
from listgate.mail.parser import parse
from listgate.models import MailingList, OutboxEntry, RawMessage
from listgate.states import DigestFrequency, SubscriptionKind
from listgate.subscriptions import MAIL, SubscriptionError, change, notice

log = logging.getLogger(__name__)


def handle(session: Session, settings: Settings, entry: OutboxEntry) -> list[OutboxEntry]:
    """Carry out one command from its outbox payload; returns the mail to enqueue after commit."""
    payload = json.loads(entry.payload or "{}")
    command = str(payload.get("command", ""))
    if payload.get("auto"):
        log.info(
            "ignored automatic mail to %s+%s: %s", payload.get("list"), command, payload["auto"]
        )
        return []
    mlist, sender = _sender_and_list(session, payload)
    if mlist is None:
        return []
    try:
        if payload.get("thread_id"):
            return _thread_command(
                session, settings, mlist, command, sender, int(payload["thread_id"])
            )
        if command in (moderation.APPROVE, moderation.REJECT):
            _require_moderator(settings, mlist, command, sender)
            return moderation.by_mail(
                session,
                settings.secret_key,
                mlist,
                command,
                str(payload.get("arg", "")),
                sender,
                _body(session, payload),
            )
        return _list_command(session, settings, mlist, command, sender, str(payload.get("arg", "")))
    except RateLimited as exc:  # answering would defeat the limit
        log.info("command %s from %s on %s not answered: %s", command, sender, mlist.name, exc)
        return []
    except (SubscriptionError, moderation.ModerationError) as exc:
        log.info("command %s from %s on %s refused: %s", command, sender, mlist.name, exc)
        return [
            notice(
                session,
                mlist,
                "not_done",
                sender,
                entry.id,
                reply=True,
                command=command,
                why=str(exc),
            )
        ]


def _require_moderator(settings: Settings, mlist: MailingList, command: str, sender: str) -> None:
    """The approve/reject address was mailed to the moderators of its time: it acts only for
    whoever may moderate the list now (a moderator removed since is refused)."""
    if not administration.may_moderate(mlist, sender, settings.admins):
        raise moderation.ModerationError(
            f"{sender} is not a moderator of {mlist.name}, so this changed nothing; "
            f"ask one of its moderators or owners to {command} the post"
        )


def _sender_and_list(session: Session, payload: dict[str, Any]) -> tuple[MailingList | None, str]:
    """The list and the sender's address, or (None, '') when the command cannot be answered."""
    mlist = lists.get(session, str(payload.get("list", "")))
    try:
        sender = subscriptions.normalize(str(payload.get("from", "")))
    except SubscriptionError:
        sender = ""
    if mlist is None or not sender:
        log.info(
            "command %r for list %r from %r ignored",
            payload.get("command"),
            payload.get("list"),
            payload.get("from"),
        )
        return None, ""
    return mlist, sender


def answer_failure(session: Session, entry: OutboxEntry, reference: str) -> list[OutboxEntry]:
    """The short reply to a command that failed for good (after the entry was marked failed)."""
    payload = json.loads(entry.payload or "{}")
    if payload.get("auto"):
        return []
    mlist, sender = _sender_and_list(session, payload)
    if mlist is None:
        return []
    return [
        notice(
            session,
            mlist,
            "failed",
            sender,
            entry.id,
            reply=True,
            command=str(payload.get("command", "")),
            reference=reference,
        )
    ]


def _list_command(
    session: Session, settings: Settings, mlist: MailingList, command: str, sender: str, arg: str
) -> list[OutboxEntry]:
    if command == "subscribe":
        # The confirmation goes to the address being subscribed, so nobody can subscribe someone
        # else.
        return _request(session, settings, mlist, sender)
    if command == "confirm":
        return confirmations.confirm_by_code(session, settings.secret_key, mlist, arg).outbox
    if command == "unsubscribe":
        # Acts at once (RFC 2369 mailto); the goodbye mail tells the address, so a forged
        # request is noticed and undone with one mail.
        return change(session, mlist, sender, subscriptions.LEAVE, channel=MAIL).outbox
    if command == "digest":
        # Like unsubscribe it acts at once (only on a subscription the address has), and the
        # answer tells it.
        return change(
            session,
            mlist,
            sender,
            subscriptions.DIGEST,
            channel=MAIL,
            frequency=arg or DigestFrequency.DAILY,
        ).outbox
    if command == "help":
        return [notice(session, mlist, "help", sender, reply=True)]
    log.info("unknown command %r on %s", command, mlist.name)
    return []


def _request(
    session: Session,
    settings: Settings,
    mlist: MailingList,
    sender: str,
    thread_id: int | None = None,
) -> list[OutboxEntry]:
    """A subscription asked for by mail (to the list, or to thread_id): double opt-in."""
    return confirmations.request(
        session,
        mlist,
        sender,
        secret=settings.secret_key,
        base_url=settings.base_url,
        domain=settings.domain,
        kind=SubscriptionKind.LIST if thread_id is None else SubscriptionKind.THREAD,
        thread_id=thread_id or 0,
        channel=MAIL,
    ).outbox


def _thread_command(
    session: Session,
    settings: Settings,
    mlist: MailingList,
    command: str,
    sender: str,
    thread_id: int,
) -> list[OutboxEntry]:
    """follow/mute/unsubscribe in a reply: act on that thread (never archived), and say so."""
    actions = {
        "mute": subscriptions.MUTE,
        "unsubscribe": subscriptions.LEAVE_THREAD,
        "follow": subscriptions.FOLLOW,
    }
    if command not in actions:
        log.info("unknown thread command %r on %s", command, mlist.name)
        return []
    if command == "follow" and not subscriptions.has_active(session, mlist, sender):
        # Someone we do not mail yet: From can be forged, so double opt-in as on the web.
        return _request(session, settings, mlist, sender, thread_id)
    return change(
        session, mlist, sender, actions[command], thread_id=thread_id, channel=MAIL
    ).outbox


def _body(session: Session, payload: dict[str, Any]) -> str:
    """The text of the command mail itself (a moderator's "reject: REASON")."""
    raw = session.get(RawMessage, int(payload.get("raw_id") or 0))
    return parse(raw.data).body_text if raw is not None else ""
