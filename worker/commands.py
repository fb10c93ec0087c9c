"""Mail commands: NAME+subscribe/unsubscribe/help/confirm-CODE@, and follow/mute/unsubscribe replies."""

from __future__ import annotations

import json
import logging

from sqlalchemy.orm import Session

from listgate import dispatch, lists, moderation, subscriptions
from listgate.config import Settings
from listgate.models import MailingList, OutboxEntry, RawMessage
from listgate.parsing import parse
from listgate.subscriptions import SubscriptionError

log = logging.getLogger(__name__)


def handle(session: Session, settings: Settings, entry: OutboxEntry) -> list[OutboxEntry]:
    """Carry out one command from its outbox payload; returns the mail to enqueue after commit."""
    payload = json.loads(entry.payload or "{}")
    command, sender = str(payload.get("command", "")), str(payload.get("from", "")).lower()
    if payload.get("auto"):
        log.info("ignored automatic mail to %s+%s: %s", payload.get("list"), command, payload["auto"])
        return []
    mlist = lists.get(session, str(payload.get("list", "")))
    if mlist is None or "@" not in sender:
        log.info("command %r for list %r from %r ignored", command, payload.get("list"), sender)
        return []
    try:
        if payload.get("thread_id"):
            return _thread_command(session, settings, mlist, command, sender, int(payload["thread_id"]))
        if command in (moderation.APPROVE, moderation.REJECT):
            return moderation.by_mail(session, settings.secret_key, mlist, command, str(payload.get("arg", "")),
                                      sender, _body(session, payload))
        return _list_command(session, settings, mlist, command, sender, str(payload.get("arg", "")))
    except (SubscriptionError, moderation.ModerationError) as exc:
        log.info("command %s from %s on %s refused: %s", command, sender, mlist.name, exc)
        return [dispatch.record(session, dispatch.SEND_NOTICE, entry.id, {
            "template": "rejected", "to": sender, "list": mlist.name, "reply": True,
            "subject": f"{command} request", "reason": str(exc)})]


def _list_command(session: Session, settings: Settings, mlist: MailingList, command: str, sender: str,
                  arg: str) -> list[OutboxEntry]:
    if command == "subscribe":
        # The confirmation goes to the address being subscribed, so nobody can subscribe someone else.
        return subscriptions.request(session, mlist, sender, secret=settings.secret_key,
                                     base_url=settings.base_url, domain=settings.domain).outbox
    if command == "confirm":
        return subscriptions.confirm_by_code(session, settings.secret_key, mlist, arg).outbox
    if command == "unsubscribe":
        # Acts at once (RFC 2369 mailto); the goodbye mail tells the address, so a forged
        # request is noticed and undone with one mail.
        return subscriptions.leave(session, mlist, sender).outbox
    if command == "digest":
        # Like unsubscribe it acts at once, and the notice tells the address (a forged change is noticed).
        return subscriptions.set_digest(session, mlist, sender, arg or "daily", notify=True).outbox
    if command == "help":
        return [dispatch.record(session, dispatch.SEND_NOTICE, 0, {
            "template": "help", "to": sender, "list": mlist.name, "reply": True})]
    log.info("unknown command %r on %s", command, mlist.name)
    return []


def _thread_command(session: Session, settings: Settings, mlist: MailingList, command: str, sender: str,
                    thread_id: int) -> list[OutboxEntry]:
    """follow/mute/unsubscribe in a reply: act on that thread (never archived)."""
    if command == "mute":
        return subscriptions.mute(session, mlist, sender, thread_id).outbox
    if command == "unsubscribe":
        return subscriptions.leave_thread(session, mlist, sender, thread_id).outbox
    if command == "follow":
        if subscriptions.has_active(session, mlist, sender):
            return subscriptions.follow(session, mlist, sender, thread_id).outbox
        # Someone we do not mail yet: From can be forged, so double opt-in as on the web.
        return subscriptions.request(session, mlist, sender, secret=settings.secret_key, base_url=settings.base_url,
                                     domain=settings.domain, kind="thread", thread_id=thread_id).outbox
    log.info("unknown thread command %r on %s", command, mlist.name)
    return []


def _body(session: Session, payload: dict[str, object]) -> str:
    """The text of the command mail itself (a moderator's "reject: REASON")."""
    raw = session.get(RawMessage, int(payload.get("raw_id") or 0))  # type: ignore[call-overload]
    return parse(raw.data).body_text if raw is not None else ""
