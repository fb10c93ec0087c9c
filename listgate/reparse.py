"""Re-derive archived posts from their stored bytes: after a decoder fix, an old post shows what
the same mail arriving now would show (`listgate messages reparse`).

Only what parsing derives for display and search is derived again: the body text (and whether it
is format=flowed), the HTML, the attachments with their stored bytes (contents.store_attachments)
and so the search index, which follows the text in the same transaction (a trigger on SQLite, a
generated column on PostgreSQL). The Message-ID, threading, dates, authors, subject, moderation
state, votes, reports and hidden status stay as they are.

- A post its author edited on the web keeps the text it was edited to (and its history); its HTML
  and attachments are derived again.
- A removed post is left alone: a takedown stays down, and a purged one has no bytes left.
- An attachment that stays (the same bytes) keeps its row, so its download address stays; only its
  name, type or place change. Contents no post refers to any more are deleted as other code
  deletes them (administration.drop_unused).

A batch is read and parsed first, then what differs is compared again and written in one
transaction (the list locked, as every writer locks it): a run stopped midway leaves every post
either as it was or derived anew, and the write lock of SQLite is not held while mail is parsed.
A second run finds nothing to change and says so. Each post written has its derivation counter
raised in the same transaction: running web processes, which keep rendered posts by it
(webarchive.views.pages.posts), show the post anew at once, without a restart.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from listgate import administration, contents, conversations, plurals
from listgate import lists as lists_service
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.mail.message import ParsedAttachment, ParsedMessage
from listgate.mail.parser import parse
from listgate.models import Attachment, MailingList, Message, RawMessage
from listgate.states import PostState
from listgate.store import lock_list

EXAMPLES = 10  # message ids shown of what changed, by default

_STORED = (
    select(
        Message.id,
        Message.message_id,
        Message.body_text,
        Message.body_html,
        Message.is_flowed,
        Message.edited_at,
        RawMessage.data,
    )
    .join(RawMessage, RawMessage.id == Message.raw_id)
    .where(
        Message.list_id == bindparam("list_id"),
        Message.id > bindparam("after"),
        Message.status != PostState.REMOVED,
    )
    .order_by(Message.id)
    .limit(bindparam("limit"))
)
_ATTACHMENTS = (
    select(
        Attachment.id,
        Attachment.message_pk,
        Attachment.position,
        Attachment.filename,
        Attachment.content_type,
        Attachment.sha256,
    )
    .where(Attachment.message_pk.in_(bindparam("pks", expanding=True)))
    .order_by(Attachment.message_pk, Attachment.position, Attachment.id)
)
_CURRENT = select(
    Message.id, Message.body_text, Message.body_html, Message.is_flowed, Message.edited_at
).where(Message.id.in_(bindparam("pks", expanding=True)), Message.status != PostState.REMOVED)
# An edit made while the batch runs (PostgreSQL) is kept too: the row decides, as it is updated.
_UNEDITED = Message.edited_at.is_(None)
_BODIES = (
    update(Message)
    .where(Message.id == bindparam("pk"))
    .values(
        body_text=case((_UNEDITED, bindparam("text")), else_=Message.body_text),
        is_flowed=case((_UNEDITED, bindparam("flowed")), else_=Message.is_flowed),
        body_html=bindparam("html"),
    )
)
# What the post shows was derived again: a web process keeping rendered posts renders it anew.
_DERIVED = (
    update(Message).where(Message.id == bindparam("pk")).values(derivation=Message.derivation + 1)
)
_PLACE = (
    update(Attachment)
    .where(Attachment.id == bindparam("att_id"))
    .values(
        position=bindparam("position"),
        filename=bindparam("filename"),
        content_type=bindparam("content_type"),
    )
)


@dataclass(frozen=True)
class _Row:
    """An attachment row as stored."""

    id: int
    position: int
    filename: str
    content_type: str
    sha256: str


@dataclass
class Change:
    """What deriving one post again changes."""

    message_pk: int
    message_id: str
    parsed: ParsedMessage
    text: bool = False  # its body text (or format=flowed)
    html: bool = False
    added: list[tuple[int, ParsedAttachment]] = field(default_factory=list)  # (place, file)
    removed: list[_Row] = field(default_factory=list)
    renamed: int = 0  # the same bytes under another name or type
    moved: list[tuple[_Row, int, ParsedAttachment]] = field(default_factory=list)  # a new place

    @property
    def any(self) -> bool:
        """Whether anything is to be written."""
        return bool(self.text or self.html or self.added or self.removed or self.moved)


@dataclass
class Tally:
    """What a run found (or, on a dry run, would change), in lines fit to print."""

    dry_run: bool
    examples_wanted: int = EXAMPLES
    lists: list[str] = field(default_factory=list)
    seen: int = 0
    skipped: int = 0  # removed posts, left alone
    kept_edits: int = 0  # posts edited on the web whose text would differ: their edit is kept
    changed: int = 0
    text: int = 0
    html: int = 0
    added: int = 0
    removed: int = 0
    renamed: int = 0
    examples: list[str] = field(default_factory=list)

    def count(self, change: Change, list_name: str) -> None:
        """Add one post that changes."""
        self.changed += 1
        self.text += change.text
        self.html += change.html
        self.added += len(change.added)
        self.removed += len(change.removed)
        self.renamed += change.renamed
        if len(self.examples) < self.examples_wanted:
            self.examples.append(f"<{change.message_id}> on {list_name}")

    def lines(self) -> list[str]:
        """The summary: what was read, what changed per kind, examples."""
        where = ", ".join(self.lists) if self.lists else "no lists"
        out = [
            f"read {_count(self.seen, 'message')} on {where}"
            + (f" ({self.skipped} removed left alone)" if self.skipped else "")
        ]
        verb = "would change" if self.dry_run else "changed"
        if not self.changed:
            out.append(f"{verb}: 0 messages: each shows what its stored bytes give it now")
        else:
            out.append(f"{verb}: {_count(self.changed, 'message')}")
            out.append(
                f"  text: {self.text}, html: {self.html}, attachments added: {self.added}, "
                f"removed: {self.removed}, renamed: {self.renamed}"
            )
            out.extend(f"  {example}" for example in self.examples)
            if self.changed > len(self.examples):
                out.append(f"  ... and {self.changed - len(self.examples)} more")
        if self.kept_edits:
            out.append(f"kept the text of {_count(self.kept_edits, 'post')} edited on the web")
        if self.dry_run:
            out.append("dry run: nothing was written")
        return out


def _count(n: int, noun: str) -> str:
    """'2,000 messages', '1 message'."""
    return f"{n:,} {noun if n == 1 else plurals.plural(noun)}"


def compare(change: Change, stored: Any, rows: Sequence[_Row]) -> bool:
    """Fill change with what differs from the stored post; True when the post's web edit keeps
    text its bytes would now give otherwise."""
    new = change.parsed
    edited = stored.edited_at is not None
    differs = stored.body_text != new.body_text or stored.is_flowed != new.is_flowed
    change.text = differs and not edited
    change.html = stored.body_html != new.body_html
    unused = list(rows)
    for place, att in enumerate(new.attachments):
        same = [r for r in unused if r.sha256 == att.sha256]
        if not same:
            change.added.append((place, att))
            continue
        row = next(
            (r for r in same if (r.filename, r.content_type) == (att.filename, att.content_type)),
            same[0],
        )
        unused.remove(row)
        if (row.filename, row.content_type) != (att.filename, att.content_type):
            change.renamed += 1
        if (row.position, row.filename, row.content_type) != (
            place,
            att.filename,
            att.content_type,
        ):
            change.moved.append((row, place, att))
    change.removed = unused
    return differs and edited


def _place(att_id: int, place: int, att: ParsedAttachment) -> dict[str, Any]:
    return {
        "att_id": att_id,
        "position": place,
        "filename": att.filename,
        "content_type": att.content_type,
    }


def _apply(session: Session, changes: Sequence[Change], rows: dict[int, list[_Row]]) -> None:
    """Write the batch's changes inside its transaction."""
    conn = session.connection()
    bodies = [
        {
            "pk": c.message_pk,
            "text": c.parsed.body_text,
            "flowed": c.parsed.is_flowed,
            "html": c.parsed.body_html,
        }
        for c in changes
        if c.text or c.html
    ]
    if bodies:
        conn.execute(_BODIES, bodies)
    conn.execute(_DERIVED, [{"pk": c.message_pk} for c in changes])
    gone = [r for c in changes for r in c.removed]
    if gone:
        conn.execute(delete(Attachment).where(Attachment.id.in_([r.id for r in gone])))
    placed = [_place(r.id, place, a) for c in changes for r, place, a in c.moved]
    for c in changes:
        if c.added:  # stored as ingest stores them, then put in their places
            contents.store_attachments(
                session, replace(c.parsed, attachments=tuple(a for _, a in c.added)), c.message_pk
            )
            before = {r.id for r in rows[c.message_pk]}
            new = sorted(r.id for r in _rows(session, [c.message_pk])[c.message_pk])
            placed += [
                _place(att_id, place, a)
                for att_id, (place, a) in zip(
                    [i for i in new if i not in before], c.added, strict=True
                )
            ]
    if placed:
        conn.execute(_PLACE, placed)
    if gone:
        administration.drop_unused(session, set(), {r.sha256 for r in gone})


def _rows(session: Session, pks: Sequence[int]) -> dict[int, list[_Row]]:
    """The attachment rows of these posts, in their order."""
    found: dict[int, list[_Row]] = {pk: [] for pk in pks}
    for r in session.execute(_ATTACHMENTS, {"pks": list(pks)}):
        found[r.message_pk].append(_Row(r.id, r.position, r.filename, r.content_type, r.sha256))
    return found


def _derive(stored: Sequence[Any], rows: dict[int, list[_Row]]) -> tuple[list[Change], int]:
    """Parse each post's bytes: the posts that change, and how many edits keep their text."""
    changes, kept = [], 0
    for s in stored:
        change = Change(s.id, s.message_id, parse(s.data))
        kept += compare(change, s, rows[s.id])
        if change.any:
            changes.append(change)
    return changes, kept


def _write(session: Session, mlist: MailingList, found: Sequence[Change]) -> list[Change]:
    """Compare again under the list's lock (a post edited or removed since it was read) and write
    what still differs; the changes written."""
    lock_list(session, mlist)  # first, as every writer of the list
    current = {r.id: r for r in session.execute(_CURRENT, {"pks": [c.message_pk for c in found]})}
    rows = _rows(session, list(current))
    changes = []
    for c in found:
        if c.message_pk in current:
            change = Change(c.message_pk, c.message_id, c.parsed)
            compare(change, current[c.message_pk], rows[c.message_pk])
            if change.any:
                changes.append(change)
    if changes:
        _apply(session, changes, rows)
        conversations.changed(session, mlist.id)  # what the archive shows of the list moved
    return changes


def reparse_batch(
    read: sessionmaker[Session],
    write: sessionmaker[Session] | None,
    mlist: MailingList,
    after: int,
    limit: int,
    tally: Tally,
) -> int | None:
    """Derive the next `limit` posts of mlist after id `after` again, in one transaction of write
    (None: a dry run); the last id read, None when there was none.

    The posts are read and parsed outside that transaction: on SQLite the write lock is held only
    while the changes are written, not while the mail is parsed.
    """
    with read() as session:
        stored = session.execute(
            _STORED, {"list_id": mlist.id, "after": after, "limit": limit}
        ).all()
        rows = _rows(session, [s.id for s in stored])
    if not stored:
        return None
    found, kept = _derive(stored, rows)
    tally.seen += len(stored)
    tally.kept_edits += kept
    if found and write is not None:
        with transaction(write) as session:
            found = _write(session, mlist, found)
    for change in found:
        tally.count(change, mlist.name)
    return int(stored[-1].id)


def _batches(
    read: sessionmaker[Session],
    write: sessionmaker[Session] | None,
    mlist: MailingList,
    batch: int,
    tally: Tally,
) -> Iterator[int]:
    """Run the list's batches; yields how many posts each read."""
    after: int | None = 0
    while after is not None:
        before = tally.seen
        after = reparse_batch(read, write, mlist, after, batch, tally)
        yield tally.seen - before


def _targets(
    db: sessionmaker[Session], list_name: str | None
) -> tuple[list[tuple[MailingList, int]], int]:
    """The lists to read (ListError for an unknown name) with how many posts each holds to read,
    and how many removed posts they hold."""
    with db() as session:
        if list_name is not None:
            chosen = [lists_service.require(session, list_name.lower())]
        else:
            chosen = list(session.scalars(select(MailingList).order_by(MailingList.name)))
        counts: dict[int, int] = dict(
            session.execute(
                select(Message.list_id, func.count(Message.id))
                .where(Message.list_id.in_([m.id for m in chosen]))
                .where(Message.status != PostState.REMOVED)
                .group_by(Message.list_id)
            ).all()
        )
        removed = session.scalar(
            select(func.count(Message.id)).where(
                Message.list_id.in_([m.id for m in chosen]), Message.status == PostState.REMOVED
            )
        )
    return [(m, counts.get(m.id, 0)) for m in chosen], removed or 0


def run(
    settings: Settings,
    list_name: str | None = None,
    *,
    dry_run: bool = False,
    batch: int = 500,
    examples: int = EXAMPLES,
    progress: bool = True,
) -> Tally:
    """Derive every post of one list (or of all) again from its stored bytes, a progress bar on
    stderr unless progress is False; ListError for an unknown list."""
    engine = make_engine(settings)
    try:
        read = session_factory(engine)
        write = None if dry_run else session_factory(writer(engine))
        targets, removed = _targets(read, list_name)
        tally = Tally(dry_run, examples, [m.name for m, _ in targets], skipped=removed)
        with tqdm(
            total=sum(n for _, n in targets),
            unit="msg",
            disable=not progress,
            file=sys.stderr,
            desc="reparsing",
            dynamic_ncols=True,
        ) as bar:
            for mlist, _ in targets:
                bar.set_description(f"reparsing {mlist.name}", refresh=False)
                for done in _batches(read, write, mlist, batch, tally):
                    bar.update(done)
                    bar.set_postfix(changed=str(tally.changed), refresh=False)
        return tally
    finally:
        engine.dispose()
