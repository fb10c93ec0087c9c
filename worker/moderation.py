"""Moderators hear of held posts and reports by mail, and get a daily reminder of what waits."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listgate import dispatch, moderation, store
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import MailingList, Message, ModerationReminder, OutboxEntry
from listgate.states import PostState
from worker.context import WorkerContext

log = logging.getLogger(__name__)

REMIND_AFTER = timedelta(hours=12)  # a post held this long is in the next daily reminder
MAX_LISTED = 50  # posts named in one reminder


def notify(session: Session, settings: Settings, entry: OutboxEntry) -> list[OutboxEntry]:
    """One mail per moderator (else owner, else site admin) about a held or reported post."""
    payload = json.loads(entry.payload or "{}")
    msg = session.get(Message, entry.ref_id)
    if msg is None:
        return []
    mlist = session.get_one(MailingList, msg.list_id)
    if payload.get("event") == PostState.HELD and msg.status != PostState.HELD:
        return []  # already dealt with (on the web) before this ran
    people = moderation.recipients(mlist, settings.admins)
    if not people:
        log.error(
            "list %s has no moderators, owners or site admins: nobody hears of %s post %s",
            mlist.name,
            payload.get("event"),
            msg.id,
        )
        return []
    return [
        dispatch.record(
            session, dispatch.SEND_NOTICE, msg.id, _notice(settings, mlist, msg, payload, to)
        )
        for to in people
    ]


def _notice(
    settings: Settings, mlist: MailingList, msg: Message, payload: dict[str, Any], to: str
) -> dict[str, Any]:
    common = {
        "to": to,
        "list": mlist.name,
        "subject": msg.subject,
        "from": msg.from_addr,
        "attach_raw_id": msg.raw_id,
        "link": f"{settings.base_url}/moderation",
    }
    if payload.get("event") == "report":
        return common | {
            "template": "report",
            "reason": payload.get("reason", ""),
            "post": f"{settings.base_url}/messages/{msg.id}",
        }
    approve = moderation.address(
        settings.secret_key, moderation.APPROVE, msg, mlist, settings.domain
    )
    reject = moderation.address(settings.secret_key, moderation.REJECT, msg, mlist, settings.domain)
    return common | {
        "template": "moderate",
        "reason": payload.get("reason", ""),
        "approve": approve,
        "reject": reject,
        "reply_to": reject,
    }


def send_reminders(ctx: WorkerContext, now: datetime | None = None) -> int:
    """Once per list and UTC day: remind its moderators of posts held for REMIND_AFTER or longer."""
    now = now or datetime.now(UTC)
    entries: list[OutboxEntry] = []
    with transaction(ctx.db) as session:
        waiting = session.execute(
            select(Message.list_id, func.count())
            .where(Message.status == PostState.HELD, Message.received_at <= now - REMIND_AFTER)
            .group_by(Message.list_id)
        ).all()
        for list_id, count in waiting:
            claimed = (
                session.connection()
                .execute(
                    store.of(session).insert_ignore(ModerationReminder),
                    {"list_id": list_id, "day": now.date(), "pending": count, "created_at": now},
                )
                .rowcount
            )
            if claimed:
                entries += _reminder(
                    session, ctx.settings, session.get_one(MailingList, list_id), now
                )
    ctx.enqueue(entries)
    return len(entries)


def _reminder(
    session: Session, settings: Settings, mlist: MailingList, now: datetime
) -> list[OutboxEntry]:
    held = session.scalars(
        select(Message)
        .where(
            Message.list_id == mlist.id,
            Message.status == PostState.HELD,
            Message.received_at <= now - REMIND_AFTER,
        )
        .order_by(Message.received_at)
        .limit(MAX_LISTED)
    ).all()
    key, domain = settings.secret_key, settings.domain
    lines = [
        f'- "{m.subject}" from {m.from_addr}, held since {m.received_at:%Y-%m-%d %H:%M} UTC\n'
        f"    approve: {moderation.address(key, moderation.APPROVE, m, mlist, domain)}\n"
        f"    reject:  {moderation.address(key, moderation.REJECT, m, mlist, domain)}"
        for m in held
    ]
    people = moderation.recipients(mlist, settings.admins)
    return [
        dispatch.record(
            session,
            dispatch.SEND_NOTICE,
            mlist.id,
            {
                "template": "reminder",
                "to": to,
                "list": mlist.name,
                "count": len(held),
                "posts": "\n".join(lines),
                "link": f"{settings.base_url}/moderation",
            },
        )
        for to in people
    ]
