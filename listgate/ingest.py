"""The one entry point for mail into the archive: parse, dedupe, thread, store, queue work."""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from typing import Any, Sequence

from sqlalchemy import bindparam, exists, insert, or_, select
from sqlalchemy.orm import Session

from listgate import dispatch, lists, threads
from listgate.addresses import Recipient
from listgate.bans import is_banned
from listgate.models import Attachment, Blob, MailingList, Message, OutboxEntry, Person, RawMessage, Subscription, ThreadNode
from listgate.models.archive import HELD, VISIBLE
from listgate.models.people import ACTIVE
from listgate.parsing import MessageHead, ParsedMessage, normalize_subject

log = logging.getLogger(__name__)

STORED, DUPLICATE, HELD_FOR_MODERATION, DROPPED, COMMAND = "stored", "duplicate", "held", "dropped", "command"
REFUSED = "refused"  # the sender may not post here (banned): refused with a 5xx over SMTP
THREAD_COMMANDS = ("follow", "mute", "unsubscribe")
LOOP_HEADER = "X-Listgate-Loop"
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


def automatic_reason(parsed: ParsedMessage | MessageHead, envelope_from: str | None, domain: str) -> str:
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
    early = screen(session, parsed, mlist, domain=domain, origin=origin, envelope_from=envelope_from)
    if early is not None:
        return early
    word = thread_command(parsed) if origin != "import" else ""
    if word:
        return _reply_command(session, parsed, mlist, word)

    status = _policy_status(session, mlist, parsed, origin)
    msg = _draft(session, parsed, mlist, origin, status)
    thread, created = threads.attach(session, msg, parsed.chain, fallback_days, visible=status == VISIBLE)
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
                "template": "held", "to": msg.from_addr, "list": mlist.name, "subject": msg.subject,
            }))
    return result


def screen(session: Session, head: ParsedMessage | MessageHead, mlist: MailingList, *, domain: str,
           origin: str = "smtp", envelope_from: str | None = None) -> IngestResult | None:
    """The decisions headers and index look-ups make alone; None when the message goes on to be archived.

    Automatic mail is dropped, a banned sender refused, an archived Message-ID a duplicate. The
    gateway asks this at SMTP DATA (on a header scan) and ingest asks it again when archiving.
    """
    if origin != "import":
        reason = automatic_reason(head, envelope_from, domain)
        if reason:
            log.info("dropped %s on %s: %s", head.message_id, mlist.name, reason)
            return IngestResult(DROPPED, mlist.name, reason=reason)
        reason = _banned(session, mlist, head, envelope_from)
        if reason:
            log.info("refused %s on %s: %s", head.message_id, mlist.name, reason)
            return IngestResult(REFUSED, mlist.name, reason=reason)
    global _ARCHIVED
    if _ARCHIVED is None:
        _ARCHIVED = select(_MSG.c.id, _MSG.c.thread_id).where(_MSG.c.list_id == bindparam("list_id"),
                                                              _MSG.c.message_id == bindparam("message_id"))
    existing = session.connection().execute(_ARCHIVED, {"list_id": mlist.id, "message_id": head.message_id}).first()
    if existing is not None:
        return IngestResult(DUPLICATE, mlist.name, existing.id, existing.thread_id, "already archived")
    return None


def admit(session: Session, head: MessageHead, mlist: MailingList, recipient: Recipient, *, domain: str,
          envelope_from: str | None) -> IngestResult:
    """The answer at SMTP DATA from the header scan: screen()'s verdict, else stored or held (to be archived)."""
    if recipient.command:
        return IngestResult(COMMAND, mlist.name, reason=f"{recipient.command} request queued")
    early = screen(session, head, mlist, domain=domain, envelope_from=envelope_from)
    if early is not None:
        return early
    if _policy_status(session, mlist, head, "smtp") == VISIBLE:
        return IngestResult(STORED, mlist.name)
    return IngestResult(HELD_FOR_MODERATION, mlist.name, reason="held for moderation")


def publish(session: Session, msg: Message) -> OutboxEntry:
    """Make a held message visible (a moderator approved it) and queue its fan-out."""
    mlist = session.get_one(MailingList, msg.list_id)
    lock_list(session, mlist)
    msg.status = VISIBLE
    thread = session.get_one(threads.Thread, msg.thread_id)
    threads.count_visible(session, thread, msg)
    _publish_counts(mlist, msg)
    return dispatch.record(session, dispatch.FANOUT, msg.id)


def _banned(session: Session, mlist: MailingList, parsed: ParsedMessage | MessageHead, envelope_from: str | None) -> str:
    """Why the sender may not post here ('' when they may): a moderator banned the From, Sender or envelope address."""
    envelope = (envelope_from or "").strip("<> ").lower()
    sender = email.utils.parseaddr(parsed.header("Sender"))[1].strip().lower()
    for address in dict.fromkeys(a for a in (parsed.from_addr, sender, envelope) if a):
        if is_banned(session, mlist.id, address):
            return f"{address} is banned from posting to this list"
    return ""


def _publish_counts(mlist: MailingList, msg: Any) -> None:
    mlist.message_count += 1
    if mlist.last_activity is None or msg.date > mlist.last_activity:
        mlist.last_activity = msg.date


def _policy_status(session: Session, mlist: MailingList, parsed: ParsedMessage | MessageHead, origin: str) -> str:
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


@dataclass(frozen=True)
class Item:
    """One message to archive for each of its recipients (a list, or a list's command address)."""

    parsed: ParsedMessage
    recipients: tuple[Recipient, ...]
    origin: str = "smtp"
    envelope_from: str | None = None


ItemResult = list[IngestResult | None] | Exception  # per recipient (None: no such list), or what failed the item


class BatchAborted(RuntimeError):
    """The transaction itself is gone (disk full, I/O error, out of memory, a lost connection).

    Nothing of the batch can commit: the caller redoes each message in a transaction of its own.
    """


def ingest_batch(session: Session, items: Sequence[Item], *, domain: str, fallback_days: int = 30) -> list[ItemResult]:
    """Ingest each item under its own SAVEPOINT in the caller's transaction: the one way mail enters the archive.

    An item that fails alone gets its exception and the others go on. When a failure took the
    whole transaction with it (SQLite rolls back everything on SQLITE_FULL and then reports
    "no such savepoint"), BatchAborted is raised instead, so no caller commits or counts the rest.
    """
    known: dict[str, MailingList | None] = {}  # a batch posts mostly to the same lists: look each up once
    try:  # one SAVEPOINT for the batch: per message they cost a statement pair and a flush each
        with session.begin_nested():
            return [_ingest_item(session, item, known, domain, fallback_days) for item in items]
    except Exception as exc:  # noqa: BLE001 - redone below, one savepoint per message
        if not transaction_alive(session):
            raise BatchAborted(f"{type(exc).__name__}: {exc}") from exc
        log.info("a message of a batch of %d failed (%s); redoing the batch one message at a time", len(items), exc)
    results: list[ItemResult] = []
    for item in items:
        try:
            with session.begin_nested():
                results.append(_ingest_item(session, item, known, domain, fallback_days))
        except Exception as exc:  # noqa: BLE001 - this item only, unless the transaction went with it
            if not transaction_alive(session):
                raise BatchAborted(f"{type(exc).__name__}: {exc}") from exc
            log.warning("archiving <%s> failed: %s: %s", item.parsed.message_id, type(exc).__name__, exc)
            results.append(exc)
    return results


def _ingest_item(session: Session, item: Item, known: dict[str, MailingList | None], domain: str,
                 fallback_days: int) -> list[IngestResult | None]:
    done: dict[Recipient, IngestResult | None] = {}
    for recipient in item.recipients:
        if recipient not in done:
            if recipient.list_name not in known:
                known[recipient.list_name] = lists.get(session, recipient.list_name)
            mlist = known[recipient.list_name]
            done[recipient] = None if mlist is None else ingest(
                session, item.parsed, mlist, domain=domain, origin=item.origin, envelope_from=item.envelope_from,
                fallback_days=fallback_days, recipient=recipient)
    return [done[r] for r in item.recipients]


def transaction_alive(session: Session) -> bool:
    """False when the database ended the session's transaction behind its back, or the connection is lost."""
    try:
        conn = session.connection()
        if conn.invalidated:
            return False
        if conn.dialect.name == "sqlite":
            return bool(conn.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]
        conn.exec_driver_sql("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure to use it means it is gone
        return False
