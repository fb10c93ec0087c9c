"""Taking a post down: a tombstone keeps its place in the thread; a purge also deletes its bytes.

A removed post is served nowhere (pages, API, search, feeds, exports and digests show only
visible posts) and copies not yet sent are cancelled. A purge (a legal takedown) also
deletes the raw mail and the other bytes that came with its Message-ID, the attachments no other
post shares, its text with every earlier version of it, and the text the search index holds, so
nothing of it is left to serve or to find in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from listgate import administration, conversations, limits, takedowns
from listgate.lists import ListError
from listgate.models import (
    Attachment,
    Delivery,
    MailingList,
    Message,
    MessageEdit,
    MessageVariant,
    RawMessage,
    Removal,
    Report,
    Thread,
)
from listgate.models.archive import utcnow
from listgate.models.search import FTS_TABLE
from listgate.states import DeliveryState, PostState, ReportState
from listgate.store import lock_list

UNSENT = (DeliveryState.PENDING, DeliveryState.DEFERRED)  # delivery states a removal cancels


@dataclass
class Outcome:
    """What remove() did, in lines fit to print."""

    removed: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # shared content another post still serves


def tombstone(removal: Removal) -> str:
    """The words shown where a removed post was."""
    return f"removed by the moderators on {removal.removed_at:%Y-%m-%d}: {removal.reason}"


def find(session: Session, message_id: str, list_name: str | None = None) -> list[Message]:
    """Every archived copy of a Message-ID (one per list it was sent to), or ListError."""
    message_id = message_id.strip().strip("<>")
    query = select(Message).where(Message.message_id == message_id)
    if list_name:
        query = query.join(MailingList, MailingList.id == Message.list_id).where(
            MailingList.name == list_name.lower()
        )
    found = list(session.scalars(query.order_by(Message.id)))
    if not found:
        raise ListError(
            f"no archived message with Message-ID <{message_id}>"
            + (f" on {list_name}" if list_name else "")
        )
    return found


def clean_reason(reason: str) -> str:
    """The reason as the tombstone shows it (one line, whole); ListError or TooLong."""
    reason = limits.within(limits.REASON, " ".join(reason.split()))
    if not reason:
        raise ListError("give a reason: it is shown in the thread where the post was")
    return reason


def remove(
    session: Session, messages: list[Message], reason: str, actor: str, purge: bool = False
) -> Outcome:
    """Take posts down with a reason (and purge their content); ListError when that cannot be."""
    reason = clean_reason(reason)
    outcome = Outcome()
    for msg in messages:
        mlist = session.get_one(MailingList, msg.list_id)
        _take_down(session, msg, reason, actor, purge)
        administration.record(
            session,
            mlist,
            actor,
            "purge message" if purge else "remove message",
            f"<{msg.message_id}>: {reason}",
        )
        outcome.removed.append(f"<{msg.message_id}> on {mlist.name}")
    if purge:
        _purge(session, messages, outcome)
    session.flush()
    return outcome


def _take_down(session: Session, msg: Message, reason: str, actor: str, purge: bool) -> None:
    """Status, counts, tombstone row, reports closed, unsent copies cancelled."""
    # the list lock first, then the post as it is now: two moderators removing it at once take it
    # down one after the other, and only the first takes it out of the counts
    lock_list(session, session.get_one(MailingList, msg.list_id))
    session.flush()
    session.refresh(msg)
    # one change of the list either way: count_step's when a visible post leaves the counts,
    # else changed's (a tombstone shows though no count moves)
    if msg.status == PostState.VISIBLE:
        takedowns.count_step(session, msg, -1)
    else:
        conversations.changed(session, msg.list_id)
    # whatever it was (visible, hidden, held): only visible posts were counted
    msg.status = PostState.REMOVED
    row = session.get(Removal, msg.id)
    if row is None:
        row = Removal(message_pk=msg.id)
        session.add(row)
    row.reason, row.removed_by, row.removed_at, row.purged = (
        reason,
        actor,
        utcnow(),
        row.purged or purge,
    )
    session.execute(
        update(Report)
        .where(Report.message_pk == msg.id, Report.status == ReportState.OPEN)
        .values(status=ReportState.ACTIONED, resolved_at=utcnow(), resolved_by=actor)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.message_pk == msg.id, Delivery.status.in_(UNSENT))
        .values(status=DeliveryState.CANCELLED, last_error=f"removed by the moderators: {reason}")
    )


def _purge(session: Session, messages: list[Message], outcome: Outcome) -> None:
    """Delete the bytes: raw mail and the other bytes that came with its Message-ID, attachments,
    text and its earlier versions (the search index follows the text)."""
    pks = {m.id for m in messages}
    for raw_id in {m.raw_id for m in messages}:
        others = session.scalars(
            select(Message).where(Message.raw_id == raw_id, Message.id.not_in(pks))
        ).all()
        if others:
            names = ", ".join(
                sorted({session.get_one(MailingList, o.list_id).name for o in others})
            )
            raise ListError(
                f"the same mail is also archived on {names}: remove it there too "
                "(leave out --list to act on every copy)"
            )
        raw = session.get(RawMessage, raw_id)
        if raw is not None:
            # A new sha256 so the same bytes arriving again are stored afresh, not matched to this
            # empty row.
            raw.data, raw.size, raw.sha256 = b"", 0, f"purged-{raw.id}"
    # the other bytes that came with its Message-ID, and every version of its text (web edits)
    variants = set(
        session.scalars(select(MessageVariant.raw_id).where(MessageVariant.message_pk.in_(pks)))
    )
    session.execute(delete(MessageVariant).where(MessageVariant.message_pk.in_(pks)))
    session.execute(delete(MessageEdit).where(MessageEdit.message_pk.in_(pks)))
    hashes = set()
    for att in session.scalars(select(Attachment).where(Attachment.message_pk.in_(pks))):
        hashes.add(att.sha256)
        session.delete(att)
    session.flush()
    administration.drop_unused(session, variants, hashes)
    for sha in sorted(hashes):
        if (
            session.scalar(select(Attachment.id).where(Attachment.sha256 == sha).limit(1))
            is not None
        ):
            outcome.kept.append(
                f"an attachment (sha256 {sha[:12]}…) is also attached to another post: kept there"
            )
    for msg in messages:
        thread = session.get_one(Thread, msg.thread_id)
        if thread.root_message_pk == msg.id or thread.subject == msg.subject:
            # the thread named after it: its subject, the same lower-cased (subject threading),
            # and the name of its author when it starts the thread
            thread.subject, thread.subject_norm = "(removed)", ""
            if thread.root_message_pk == msg.id:
                thread.starter_name = ""
        msg.subject, msg.body_text, msg.body_html, msg.from_name = "", "", "", ""
        # an empty subject threads nothing by subject (threads.attach), as a post without one
        msg.subject_norm, msg.thread_subject_norm = "", ""
        outcome.purged.append(f"<{msg.message_id}>: raw mail, attachments and text deleted")
    session.flush()
    if session.get_bind().dialect.name == "sqlite":
        # FTS5 deletes by adding a delete marker: the words stay in the older segments of the index
        # until they are merged. A takedown merges them now, so no page of the index holds them.
        session.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('optimize')"))
