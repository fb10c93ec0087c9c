"""The one entry point for mail into the archive: parse, dedupe, thread, store, queue work."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from typing import Any

from sqlalchemy import bindparam, exists, insert, or_, select
from sqlalchemy.orm import Session

from listgate import digests, dispatch, threads
from listgate.addresses import Recipient
from listgate.bans import is_banned
from listgate.models import (Attachment, Blob, MailingList, Message, MessageVariant, OutboxEntry, Person, RawMessage,
                             Subscription, ThreadNode)
from listgate.models.archive import HELD, REMOVED, VISIBLE
from listgate.models.people import ACTIVE
from listgate.parsing import ParsedMessage, normalize_subject

log = logging.getLogger(__name__)

STORED, DUPLICATE, HELD_FOR_MODERATION, DROPPED, COMMAND = "stored", "duplicate", "held", "dropped", "command"
REFUSED = "refused"  # the sender may not post here (banned): refused with a 5xx over SMTP
VARIANT = "variant"  # other bytes with an archived Message-ID: archived beside it, not sent out
THREAD_COMMANDS = ("follow", "mute", "unsubscribe")
LOOP_HEADER = "X-Listgate-Loop"
DIGEST_REPLY = "a reply to a whole digest that names none of its posts"
_MSG = Message.__table__
_RAW = RawMessage.__table__
_FOLLOW_CHECK: Any = None  # built on first use
_ARCHIVED: Any = None  # built on first use


@dataclass
class IngestResult:
    """What happened to one message on one list; `outbox` is sent after the commit."""

    status: str
    list_name: str
    message_pk: int | None = None
    thread_id: int | None = None
    reason: str = ""
    outbox: list[OutboxEntry] = field(default_factory=list)


def automatic_reason(parsed: ParsedMessage, envelope_from: str | None, domain: str) -> str:
    """Why this mail is machine-generated and must not become a post ('' if it is not)."""
    if envelope_from is not None and envelope_from.strip("<> ") == "":
        return "empty envelope sender (a bounce or notice)"
    if parsed.auto_submitted and parsed.auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {parsed.auto_submitted}"
    if parsed.precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {parsed.precedence}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if parsed.header(name):
            return f"{name} header (an auto-responder)"
    if domain and parsed.header(LOOP_HEADER).strip().lower() == domain:
        return "sent by this listgate (mail loop)"
    return ""


def store_raw_id(session: Session, raw: bytes) -> int:
    """The id of the raw bytes' row, stored once per content hash (one INSERT, no SAVEPOINT)."""
    digest = hashlib.sha256(raw).hexdigest()
    conn = session.connection()
    new = conn.execute(threads.insert_ignore(session, RawMessage).returning(_RAW.c.id),
                       {"sha256": digest, "size": len(raw), "data": raw}).scalar()
    if new is not None:
        return int(new)
    return int(conn.execute(select(_RAW.c.id).where(_RAW.c.sha256 == digest)).scalar_one())


def lock_list(session: Session, mlist: MailingList) -> None:
    """Serialise writers per list (PostgreSQL), once per transaction; SQLite writers already hold the write lock."""
    if session.bind is None or session.get_bind().dialect.name != "postgresql":
        return
    key = ("listgate.locked", mlist.id)
    if session.info.get(key) is session.get_transaction():
        return
    # Lock the row and reload it: the object may carry counts read before another writer's commit,
    # and they are written back as absolute values.
    session.execute(select(MailingList).where(MailingList.id == mlist.id).with_for_update()
                    .execution_options(populate_existing=True)).scalars().one()
    session.info[key] = session.get_transaction()


def is_member(session: Session, mlist: MailingList, address: str) -> bool:
    """An active list or digest subscriber, or a moderator."""
    if address in mlist.moderator_addresses():
        return True
    return session.scalar(
        select(Subscription.id).where(
            Subscription.list_id == mlist.id, Subscription.address == address,
            Subscription.kind.in_(("list", "digest")), Subscription.status == ACTIVE,
        ).limit(1)
    ) is not None


def thread_command(parsed: ParsedMessage) -> str:
    """'follow', 'mute' or 'unsubscribe' when a reply's whole text is that word, else ''."""
    if not parsed.chain:
        return ""
    lines = []
    for line in parsed.body_text.splitlines():
        if line.startswith(">") or line.strip() in ("-- ", "--"):
            if line.strip() in ("-- ", "--"):
                break
            continue
        if line.strip() and not re.match(r"^On .+ wrote:$|^.+ schrieb:$", line.strip()):
            lines.append(line.strip().lower())
    return lines[0] if len(lines) == 1 and lines[0] in THREAD_COMMANDS else ""


def ingest(
    session: Session,
    parsed: ParsedMessage,
    mlist: MailingList,
    *,
    domain: str,
    origin: str = "smtp",
    envelope_from: str | None = None,
    fallback_days: int = 30,
    recipient: Recipient | None = None,
) -> IngestResult:
    """Store one message on one list inside the caller's transaction."""
    with session.no_autoflush:  # rows go in by Core statements; only Thread objects are flushed, on demand
        return _ingest(session, parsed, mlist, domain, origin, envelope_from, fallback_days, recipient)


def _ingest(session: Session, parsed: ParsedMessage, mlist: MailingList, domain: str, origin: str,
            envelope_from: str | None, fallback_days: int, recipient: Recipient | None) -> IngestResult:
    lock_list(session, mlist)
    if recipient is not None and recipient.command:
        return _command(session, parsed, mlist, recipient, envelope_from)
    if origin != "import":
        reason = automatic_reason(parsed, envelope_from, domain)
        if reason:
            log.info("dropped %s on %s: %s", parsed.message_id, mlist.name, reason)
            return IngestResult(DROPPED, mlist.name, reason=reason)
        reason = _banned(session, mlist, parsed, envelope_from)
        if reason:
            log.info("refused %s on %s: %s", parsed.message_id, mlist.name, reason)
            return IngestResult(REFUSED, mlist.name, reason=reason)
        word = thread_command(parsed)
        if word:
            return _reply_command(session, parsed, mlist, word)
    global _ARCHIVED
    if _ARCHIVED is None:
        _ARCHIVED = select(_MSG.c.id, _MSG.c.thread_id, _MSG.c.raw_id, _MSG.c.status).where(
            _MSG.c.list_id == bindparam("list_id"), _MSG.c.message_id == bindparam("message_id"))
    existing = session.connection().execute(_ARCHIVED, {"list_id": mlist.id, "message_id": parsed.message_id}).first()
    if existing is not None:
        return _same_id(session, parsed, mlist, existing)

    status = _policy_status(session, mlist, parsed, origin)
    held_why = "" if status == VISIBLE else _held_reason(mlist)
    period = digests.period_of(parsed, mlist, domain) if origin != "import" else None
    if period is not None:  # a reply to a whole digest: under the entry it answers, or held with a hint
        entry = digests.answered_entry(session, mlist, parsed, period)
        if entry is not None:
            parsed = digests.thread_under(parsed, entry)
        else:
            parsed, status, held_why = digests.held_reply(session, mlist, parsed, period, domain), HELD, DIGEST_REPLY
    msg = _draft(session, parsed, mlist, origin, status)
    keys = threads.thread_keys(parsed.message_id, parsed.in_reply_to, parsed.references)
    thread, created = threads.attach(session, msg, keys, fallback_days, visible=status == VISIBLE)
    _store_attachments(session, parsed, msg.id)
    if created:
        mlist.thread_count += 1
    result = IngestResult(STORED if status == VISIBLE else HELD_FOR_MODERATION, mlist.name, msg.id, thread.id)
    if status == VISIBLE:
        _publish_counts(mlist, msg)
        if origin != "import":
            _auto_follow(session, mlist, msg.from_addr, thread.id)
            result.outbox.append(dispatch.record(session, dispatch.FANOUT, msg.id))
    else:
        result.reason = "held for moderation"
        if origin != "import" and msg.from_addr:
            result.outbox.append(dispatch.record(session, dispatch.SEND_NOTICE, msg.id, {
                "template": "digest_reply" if held_why == DIGEST_REPLY else "held", "to": msg.from_addr,
                "list": mlist.name, "subject": msg.subject, "period": period.label if period else "",
            }))
        if origin != "import":  # the moderators hear of it once, by mail (worker/moderation.py)
            result.outbox.append(dispatch.record(session, dispatch.NOTIFY_MODERATORS, msg.id, {
                "event": "held", "list": mlist.name, "reason": held_why}))
    return result


def _held_reason(mlist: MailingList) -> str:
    """Why the list's policy holds a post, as the moderators are told."""
    if mlist.policy == "moderated":
        return "every post to this list is moderated"
    return "the sender is not a member of the list"


def _same_id(session: Session, parsed: ParsedMessage, mlist: MailingList, existing: Any) -> IngestResult:
    """A Message-ID already archived: the same bytes are a duplicate; other bytes are kept as a variant of it."""
    result = IngestResult(DUPLICATE, mlist.name, existing.id, existing.thread_id, "already archived")
    if existing.status == REMOVED:  # a takedown stays down: nothing more is kept under that Message-ID
        return result
    raw_id = store_raw_id(session, parsed.raw)
    if raw_id == existing.raw_id:
        return result
    added = session.connection().execute(threads.insert_ignore(session, MessageVariant), {
        "message_pk": existing.id, "raw_id": raw_id, "received_at": datetime.now(timezone.utc), "date": parsed.date,
        "subject": parsed.subject, "from_name": parsed.from_name}).rowcount
    if added:
        log.info("kept %s on %s as a variant: other bytes with an archived Message-ID", parsed.message_id, mlist.name)
        result.status, result.reason = VARIANT, "kept as a variant of the archived message with this Message-ID"
    return result


def publish(session: Session, msg: Message) -> OutboxEntry:
    """Make a held message visible (a moderator approved it) and queue its fan-out."""
    mlist = session.get_one(MailingList, msg.list_id)
    lock_list(session, mlist)
    msg.status = VISIBLE
    thread = session.get_one(threads.Thread, msg.thread_id)
    threads.count_visible(session, thread, msg)
    _publish_counts(mlist, msg)
    return dispatch.record(session, dispatch.FANOUT, msg.id)


def _banned(session: Session, mlist: MailingList, parsed: ParsedMessage, envelope_from: str | None) -> str:
    """Why the sender may not post here ('' when they may): a moderator banned the From or envelope address."""
    envelope = (envelope_from or "").strip("<> ").lower()
    for address in dict.fromkeys(a for a in (parsed.from_addr, envelope) if a):
        if is_banned(session, mlist.id, address):
            return f"{address} is banned from posting to this list"
    return ""


def _publish_counts(mlist: MailingList, msg: Any) -> None:
    mlist.message_count += 1
    if mlist.last_activity is None or msg.date > mlist.last_activity:
        mlist.last_activity = msg.date


def _policy_status(session: Session, mlist: MailingList, parsed: ParsedMessage, origin: str) -> str:
    if origin == "import" or mlist.policy == "open":
        return VISIBLE
    if mlist.policy == "moderated":
        return VISIBLE if parsed.from_addr in mlist.moderator_addresses() else HELD
    return VISIBLE if is_member(session, mlist, parsed.from_addr) else HELD


def _draft(session: Session, parsed: ParsedMessage, mlist: MailingList, origin: str, status: str) -> threads.Draft:
    """The new message's column values (raw bytes stored); threads.attach inserts it once its thread is known."""
    return threads.Draft(dict(
        list_id=mlist.id, message_id=parsed.message_id, message_id_generated=parsed.message_id_generated,
        raw_id=store_raw_id(session, parsed.raw), subject=parsed.subject, subject_norm=normalize_subject(parsed.subject),
        from_name=parsed.from_name, from_addr=parsed.from_addr, date=parsed.date,
        date_offset=parsed.date_offset, date_header=parsed.date_header,
        received_at=datetime.now(timezone.utc), in_reply_to=" ".join(parsed.in_reply_to)[:4000],
        references=" ".join(parsed.chain)[:20000], body_text=parsed.body_text, body_html=parsed.body_html,
        is_flowed=parsed.is_flowed, status=status, origin=origin, defects="\n".join(parsed.defects)[:20000],
    ))


def _store_attachments(session: Session, parsed: ParsedMessage, message_pk: int) -> None:
    """Attachment rows, their content stored once per hash."""
    if not parsed.attachments:
        return
    conn = session.connection()
    conn.execute(threads.insert_ignore(session, Blob), [
        {"sha256": a.sha256, "size": len(a.data), "data": a.data} for a in parsed.attachments])
    conn.execute(insert(Attachment.__table__), [
        {"message_pk": message_pk, "position": pos, "filename": a.filename, "content_type": a.content_type,
         "size": len(a.data), "sha256": a.sha256} for pos, a in enumerate(parsed.attachments)])


def _auto_follow(session: Session, mlist: MailingList, address: str, thread_id: int) -> None:
    """Posting in a thread follows it, unless the person turned that off."""
    if not address:
        return
    global _FOLLOW_CHECK
    if _FOLLOW_CHECK is None:
        people, subs = Person.__table__, Subscription.__table__
        _FOLLOW_CHECK = select(or_(
            exists().where(people.c.address == bindparam("address"), people.c.auto_follow.is_(False)),
            exists().where(subs.c.list_id == bindparam("list_id"), subs.c.address == bindparam("address"),
                           subs.c.kind.in_(("thread", "mute")), subs.c.thread_key == bindparam("thread_key"))))
    params = {"address": address, "list_id": mlist.id, "thread_key": thread_id}
    if not session.connection().execute(_FOLLOW_CHECK, params).scalar():  # not opted out, not following or muting
        session.connection().execute(threads.insert_ignore(session, Subscription), {
            "list_id": mlist.id, "address": address, "kind": "thread", "thread_key": thread_id, "status": ACTIVE,
            "confirmed_at": datetime.now(timezone.utc)})


def _command(session: Session, parsed: ParsedMessage, mlist: MailingList, recipient: Recipient,
             envelope_from: str | None) -> IngestResult:
    """A mail to NAME+command@: handed to the worker, never archived."""
    raw_id = store_raw_id(session, parsed.raw)
    kind = dispatch.HANDLE_BOUNCE if recipient.command == "bounce" else dispatch.HANDLE_COMMAND
    entry = dispatch.record(session, kind, raw_id, {
        "list": mlist.name, "command": recipient.command, "arg": recipient.arg, "raw_id": raw_id,
        "from": parsed.from_addr, "envelope_from": (envelope_from or "").strip("<>"),
        "auto": automatic_reason(parsed, envelope_from, "") if recipient.command != "bounce" else "",
    })
    return IngestResult(COMMAND, mlist.name, reason=f"{recipient.command} request queued", outbox=[entry])


def _reply_command(session: Session, parsed: ParsedMessage, mlist: MailingList, word: str) -> IngestResult:
    """A reply whose whole text is follow/mute/unsubscribe acts on that thread."""
    thread_id = session.scalar(select(ThreadNode.thread_id).where(
        ThreadNode.list_id == mlist.id, ThreadNode.msgid.in_(parsed.chain)).limit(1))
    if thread_id is None:
        return IngestResult(DROPPED, mlist.name, reason=f"'{word}' names no thread we know")
    thread = threads.resolve(session, thread_id)
    entry = dispatch.record(session, dispatch.HANDLE_COMMAND, thread.id if thread else thread_id, {
        "list": mlist.name, "command": word, "thread_id": thread.id if thread else thread_id,
        "from": parsed.from_addr, "arg": "",
    })
    return IngestResult(COMMAND, mlist.name, thread_id=thread_id, reason=f"thread {word} queued", outbox=[entry])
