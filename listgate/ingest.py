"""The one entry point for mail into the archive: parse, dedupe, thread, store, queue work."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import contents, conversations, digests, dispatch, notposted, places, store, threads
from listgate.addresses import Recipient
from listgate.admission import (
    COMMAND,
    DROPPED,
    DUPLICATE,
    HELD_FOR_MODERATION,
    REFUSED,
    STORED,
    VARIANT,
    IngestResult,
    SessionFacts,
    automatic_reason,
    policy_status,
    screen,
)
from listgate.mail.message import ParsedMessage
from listgate.mail.parser import parse
from listgate.models import (
    MailingList,
    MessageVariant,
    RawMessage,
    ThreadNode,
)
from listgate.policy import auto_follow, publish_counts
from listgate.states import (
    ListPolicy,
    PostOrigin,
    PostState,
)
from listgate.store import lock_list

log = logging.getLogger(__name__)

THREAD_COMMANDS = ("follow", "mute", "unsubscribe")
DIGEST_REPLY = "a reply to a whole digest that names none of its posts"
_ATTRIBUTION = re.compile(r"^On .+ wrote:$|^.+ schrieb:$")


def thread_command(parsed: ParsedMessage) -> str:
    """'follow', 'mute' or 'unsubscribe' when a reply's whole text is that word, else ''.

    Quoted lines and an attribution line ("On ... wrote:") are not the reply's text; the
    signature ends it. It stops at the first line that rules a command out (a word that is not
    one, or a second line of text), not at the end of a long body.
    """
    if not parsed.chain:
        return ""
    word = ""
    for line in parsed.body_text.splitlines():
        text = line.strip()
        if text in ("-- ", "--"):
            break
        if line.startswith(">") or not text or _ATTRIBUTION.match(text):
            continue
        if word or text.lower() not in THREAD_COMMANDS:
            return ""
        word = text.lower()
    return word


def ingest(
    session: Session,
    parsed: ParsedMessage,
    mlist: MailingList,
    *,
    domain: str,
    origin: str = PostOrigin.SMTP,
    envelope_from: str | None = None,
    fallback_days: int = 30,
    recipient: Recipient | None = None,
) -> IngestResult:
    """Store one message on one list inside the caller's transaction."""
    with (
        session.no_autoflush
    ):  # rows go in by Core statements; only Thread objects are flushed, on demand
        return _ingest(
            session, parsed, mlist, domain, origin, envelope_from, fallback_days, recipient
        )


def _ingest(
    session: Session,
    parsed: ParsedMessage,
    mlist: MailingList,
    domain: str,
    origin: str,
    envelope_from: str | None,
    fallback_days: int,
    recipient: Recipient | None,
) -> IngestResult:
    lock_list(session, mlist)
    if recipient is not None and recipient.command:
        return _command(session, parsed, mlist, recipient, envelope_from)
    if origin != PostOrigin.IMPORT:
        early = screen(
            SessionFacts(session),
            parsed,
            mlist,
            domain=domain,
            origin=origin,
            envelope_from=envelope_from,
        )
        if (
            early is not None
        ):  # answered 250 already (or a web post): kept in the not-posted queue, never dropped
            return (
                early
                if origin == PostOrigin.RELEASE
                else _not_posted(session, parsed, mlist, early.reason, envelope_from, early.status)
            )
        word = thread_command(parsed) if origin != PostOrigin.RELEASE else ""
        if word:
            return _reply_command(session, parsed, mlist, word, envelope_from)
    existing = _archived(session, mlist, parsed.message_id)
    if existing is not None:
        return _same_id(session, parsed, mlist, existing, fallback_days)

    status = policy_status(SessionFacts(session), mlist, parsed, origin)
    held_why = "" if status == PostState.VISIBLE else _held_reason(mlist)
    period = digests.period_of(parsed, mlist, domain) if origin != PostOrigin.IMPORT else None
    if (
        period is not None
    ):  # a reply to a whole digest: under the entry it answers, or held with a hint
        entry = digests.answered_entry(session, mlist, parsed, period)
        if entry is not None:
            parsed = digests.thread_under(parsed, entry)
        else:
            parsed, status, held_why = (
                digests.held_reply(session, mlist, parsed, period, domain),
                PostState.HELD,
                DIGEST_REPLY,
            )
    msg = _draft(session, parsed, mlist, origin, status)
    thread, _created = threads.attach(
        session, msg, parsed.thread_keys, fallback_days, visible=status == PostState.VISIBLE
    )
    contents.store_attachments(session, parsed, msg.id)
    result = IngestResult(
        STORED if status == PostState.VISIBLE else HELD_FOR_MODERATION,
        mlist.name,
        msg.id,
        thread.id,
    )
    if status == PostState.VISIBLE:
        publish_counts(mlist, msg)
        if origin != PostOrigin.IMPORT:
            auto_follow(session, mlist, msg.from_addr, thread.id)
            result.outbox.append(dispatch.record(session, dispatch.FANOUT, msg.id))
    else:
        result.reason = "held for moderation"
        if origin not in (PostOrigin.IMPORT, PostOrigin.RELEASE) and msg.from_addr:
            # An automatic reply to an unauthenticated From: rate-limited, and the Subject is not
            # quoted back.
            result.outbox.append(
                dispatch.record(
                    session,
                    dispatch.SEND_NOTICE,
                    msg.id,
                    {
                        "template": "digest_reply" if held_why == DIGEST_REPLY else "held",
                        "to": msg.from_addr,
                        "list": mlist.name,
                        "reply": True,
                        "received": msg.received_at.strftime("%Y-%m-%d %H:%M UTC"),
                        "period": period.label if period else "",
                    },
                )
            )
        if (
            origin != PostOrigin.IMPORT
        ):  # the moderators hear of it once, by mail (worker/moderation.py)
            result.outbox.append(
                dispatch.record(
                    session,
                    dispatch.NOTIFY_MODERATORS,
                    msg.id,
                    {"event": PostState.HELD, "list": mlist.name, "reason": held_why},
                )
            )
    return result


def _not_posted(
    session: Session,
    parsed: ParsedMessage,
    mlist: MailingList,
    reason: str,
    envelope_from: str | None,
    status: str = DROPPED,
) -> IngestResult:
    """Accepted and not posted: kept in the not-posted queue with its reason, never dropped
    silently.

    status is DROPPED (automatic mail, a thread command naming no thread) or REFUSED (a sender
    banned after the gateway's 250).
    """
    entry_id = notposted.keep(
        session, mlist, parsed, contents.store_raw_id(session, parsed), reason, envelope_from
    )
    log.info(
        "not posted %s on %s (queue entry %s): %s", parsed.message_id, mlist.name, entry_id, reason
    )
    return IngestResult(status, mlist.name, reason=reason)


def release(
    session: Session, entry_id: int, by: str, *, domain: str, fallback_days: int = 30
) -> IngestResult:
    """A moderator releases an entry of the not-posted queue as a post; LookupError if it cannot
    be."""
    entry = notposted.claim(session, entry_id)
    mlist = session.get_one(MailingList, entry.list_id)
    raw = session.get_one(RawMessage, entry.raw_id).data
    result = ingest(
        session,
        parse(raw),
        mlist,
        domain=domain,
        origin=PostOrigin.RELEASE,
        envelope_from=entry.envelope_from,
        fallback_days=fallback_days,
    )
    if result.status == REFUSED:
        raise LookupError(f"entry {entry_id} cannot be posted: {result.reason}")
    notposted.mark_released(entry, by, result.message_pk)
    log.info("not-posted entry %s released by %s: %s", entry_id, by, result.status)
    return result


def _held_reason(mlist: MailingList) -> str:
    """Why the list's policy holds a post, as the moderators are told."""
    if mlist.policy == ListPolicy.MODERATED:
        return "every post to this list is moderated"
    return "the sender is not a member of the list"


def _same_id(
    session: Session, parsed: ParsedMessage, mlist: MailingList, existing: Any, fallback_days: int
) -> IngestResult:
    """A Message-ID already archived: the same bytes are a duplicate; other bytes are kept as a
    variant of it.

    The message shown stays; the copy with the earliest Date places the id in the forest
    (threads.place_copies).
    """
    result = IngestResult(
        DUPLICATE, mlist.name, existing.id, existing.thread_id, "already archived"
    )
    if (
        existing.status == PostState.REMOVED
    ):  # a takedown stays down: nothing more is kept under that Message-ID
        return result
    raw_id = contents.store_raw_id(session, parsed)
    if raw_id == existing.raw_id:
        return result
    added = (
        session.connection()
        .execute(
            store.of(session).insert_ignore(MessageVariant),
            {
                "message_pk": existing.id,
                "raw_id": raw_id,
                "received_at": datetime.now(UTC),
                "date": parsed.date,
                "subject": parsed.subject,
                "from_name": parsed.from_name,
            },
        )
        .rowcount
    )
    if added:
        log.info(
            "kept %s on %s as a variant: other bytes with an archived Message-ID",
            parsed.message_id,
            mlist.name,
        )
        result.status, result.reason = (
            VARIANT,
            "kept as a variant of the archived message with this Message-ID",
        )
        result.thread_id = threads.place_copies(session, existing.id, fallback_days, parsed)[0].id
    return result


def _archived(session: Session, mlist: MailingList, message_id: str) -> places.Archived | None:
    """The archived message with this Message-ID on the list (id, thread_id, raw_id, status), or
    None."""
    return places.archived(session, mlist.id, message_id)


def look_ahead(session: Session, mlist: MailingList, batch: Sequence[ParsedMessage]) -> None:
    """Read what ingesting batch into mlist will ask (archived ids, thread nodes) in a few
    queries."""
    lock_list(session, mlist)  # first: what is read must be what the list holds while we write
    named = [key for parsed in batch for key, _ in parsed.thread_keys.named]
    subjects = [p.subject_norm for p in batch]
    places.prefetch(session, mlist.id, (p.message_id for p in batch), named, subjects)
    reached = [n.thread_id for n in places.nodes(session, mlist.id, named).values()]
    conversations.load(session, reached)  # the threads the replies join
    # and who takes part in them
    conversations.learn_participants(session, reached, (p.from_addr or p.from_name for p in batch))
    places.defer_rows(session)


def _draft(
    session: Session, parsed: ParsedMessage, mlist: MailingList, origin: str, status: str
) -> threads.Draft:
    """The new message's column values (raw bytes stored); threads.attach inserts it once its thread
    is known."""
    subject_norm = parsed.subject_norm
    return threads.Draft(
        list_id=mlist.id,
        message_id=parsed.message_id,
        subject=parsed.subject,
        date=parsed.date,
        thread_date=parsed.date,
        thread_subject_norm=subject_norm,
        subject_norm=subject_norm,
        message_id_generated=parsed.message_id_generated,
        raw_id=contents.store_raw_id(session, parsed),
        from_name=parsed.from_name,
        from_addr=parsed.from_addr,
        date_offset=parsed.date_offset,
        date_header=parsed.date_header,
        received_at=datetime.now(UTC),
        in_reply_to=" ".join(parsed.in_reply_to)[:4000],
        references=" ".join(parsed.chain)[:20000],
        body_text=parsed.body_text,
        body_html=parsed.body_html,
        is_flowed=parsed.is_flowed,
        status=status,
        origin=origin,
        defects="\n".join(parsed.defects)[:20000],
    )


def _command(
    session: Session,
    parsed: ParsedMessage,
    mlist: MailingList,
    recipient: Recipient,
    envelope_from: str | None,
) -> IngestResult:
    """A mail to NAME+command@: handed to the worker, never archived."""
    raw_id = contents.store_raw_id(session, parsed)
    kind = dispatch.HANDLE_BOUNCE if recipient.command == "bounce" else dispatch.HANDLE_COMMAND
    entry = dispatch.record(
        session,
        kind,
        raw_id,
        {
            "list": mlist.name,
            "command": recipient.command,
            "arg": recipient.arg,
            "raw_id": raw_id,
            "from": parsed.from_addr,
            "envelope_from": (envelope_from or "").strip("<>"),
            "auto": automatic_reason(parsed, envelope_from, "")
            if recipient.command != "bounce"
            else "",
        },
    )
    return IngestResult(
        COMMAND, mlist.name, reason=f"{recipient.command} request queued", outbox=[entry]
    )


def _reply_command(
    session: Session,
    parsed: ParsedMessage,
    mlist: MailingList,
    word: str,
    envelope_from: str | None,
) -> IngestResult:
    """A reply whose whole text is follow/mute/unsubscribe acts on that thread."""
    thread_id = session.scalar(
        select(ThreadNode.thread_id)
        .where(ThreadNode.list_id == mlist.id, ThreadNode.msgid.in_(parsed.chain))
        .limit(1)
    )
    if thread_id is None:
        return _not_posted(
            session, parsed, mlist, f"'{word}' names no thread we know", envelope_from
        )
    thread = threads.resolve(session, thread_id)
    entry = dispatch.record(
        session,
        dispatch.HANDLE_COMMAND,
        thread.id if thread else thread_id,
        {
            "list": mlist.name,
            "command": word,
            "thread_id": thread.id if thread else thread_id,
            "from": parsed.from_addr,
            "arg": "",
        },
    )
    return IngestResult(
        COMMAND, mlist.name, thread_id=thread_id, reason=f"thread {word} queued", outbox=[entry]
    )
