"""Threading: a message joins the thread of every id it names; its parent is the nearest archived
one.

Works incrementally on a session: storing one message touches only the rows its own
Message-ID, the ids it names and its subject's recent messages reach (all indexed), never a
whole list. The result does not depend on arrival order (see listgate/forest.py for the
parent rules); placeholders keep threads whole while a middle message is missing. Rows are
written with Core statements; Thread objects stay ORM objects (listgate/conversations.py).

For batches, call attach once per message inside one transaction: every statement it runs
is keyed by the message's ids, so what earlier calls wrote is seen without a flush.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, false, insert, null, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from listgate import conversations, forest, places
from listgate.conversations import count_visible, resolve
from listgate.forest import choose_parent
from listgate.mail.keys import Keys, is_thread_key, thread_keys
from listgate.mail.parser import parse
from listgate.mail.subjects import is_reply_subject
from listgate.models import Message, MessageRef, MessageVariant, RawMessage, Thread, ThreadNode
from listgate.states import PostState
from listgate.store import new_message_id, table

if TYPE_CHECKING:
    from listgate.mail.message import ParsedMessage

__all__ = [
    "Draft",
    "Keys",
    "Thread",
    "attach",
    "choose_parent",
    "count_visible",
    "is_thread_key",
    "place_copies",
    "place_key",
    "replace",
    "resolve",
    "thread_keys",
]
_NODES = table(ThreadNode)
_MESSAGES = table(Message)
_REFS = table(MessageRef)
# With the batch's others (listgate.places.insert_rows). RETURNING makes SQLAlchemy send the rows
# as multi-row VALUES ("insertmanyvalues"), one statement per 100 rows, where a plain executemany
# runs one statement per row: SQLite's FTS5 writes its pending index at every statement's
# savepoint, so the search index triggers cost about 0.2 ms a row more that way. 100, not
# SQLAlchemy's 1,000: the same CPU, and the index pending in memory for a whole batch of 500
# raised the import's peak RSS from 137 to 157 MB.
_INSERT_MESSAGE = (
    insert(_MESSAGES).returning(_MESSAGES.c.id).execution_options(insertmanyvalues_page_size=100)
)
_INSERT_NODE = insert(_NODES)
_FILL_NODE = update(_NODES).where(
    _NODES.c.list_id == bindparam("list"), _NODES.c.msgid == bindparam("node_msgid")
)
_INSERT_REF = insert(_REFS)
_THREAD_OF = select(_MESSAGES.c.thread_id).where(_MESSAGES.c.id == bindparam("pk"))
_PLACED = select(
    _MESSAGES.c.thread_id, _MESSAGES.c.thread_date, _MESSAGES.c.thread_subject_norm
).where(_MESSAGES.c.id == bindparam("pk"))
_VARIANTS = table(MessageVariant)
_RAW = table(RawMessage)
_PRIMARY = (
    select(
        _MESSAGES.c.date,
        _RAW.c.sha256,
        _MESSAGES.c.raw_id,
        _MESSAGES.c.received_at,
        null().label("variant_id"),
        false().label("places"),
    )
    .join(_RAW, _RAW.c.id == _MESSAGES.c.raw_id)
    .where(_MESSAGES.c.id == bindparam("pk"))
)
_VARIANTS_OF = (
    select(
        _VARIANTS.c.date,
        _RAW.c.sha256,
        _VARIANTS.c.raw_id,
        _VARIANTS.c.received_at,
        _VARIANTS.c.id.label("variant_id"),
        _VARIANTS.c.places,
    )
    .join(_RAW, _RAW.c.id == _VARIANTS.c.raw_id)
    .where(_VARIANTS.c.message_pk == bindparam("pk"))
)


@dataclass
class Draft:
    """A message being stored (or an archived one placed anew): its column values; `id` once
    inserted.

    The threading inputs come first; `replace` needs only those. `row()` is what attach inserts.
    """

    list_id: int
    message_id: str
    subject: str
    date: datetime  # UTC
    thread_date: datetime  # the Date that places it (the earliest copy's, for a Message-ID)
    thread_subject_norm: str
    subject_norm: str = ""
    message_id_generated: bool = False
    raw_id: int = 0
    from_name: str = ""
    from_addr: str = ""
    date_offset: int = 0
    date_header: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    in_reply_to: str = ""
    references: str = ""
    body_text: str = ""
    body_html: str = ""
    is_flowed: bool = False
    status: str = PostState.VISIBLE
    origin: str = "smtp"
    defects: str = ""
    thread_id: int | None = None
    parent_id: int | None = None
    pref_parent_id: int | None = None
    parent_pos: int = -1
    by_subject: bool = False
    id: int = 0
    named: list[tuple[str, int]] = field(default_factory=list)  # its thread keys

    def row(self) -> dict[str, Any]:
        """The messages row to insert: every field but `named`."""
        row = dict(self.__dict__)
        del row["named"]
        return row


def attach(
    session: Session, draft: Draft, keys: Keys, fallback_days: int, visible: bool = True
) -> tuple[Thread, bool]:
    """Insert a new message (draft) into its thread, merging threads it links and re-hanging what it
    is nearer to.

    Returns the thread and whether it is new; draft.id is the new message's pk.
    """
    conn = session.connection()
    # A brand-new message has no descendants yet, so no choice here can make a loop.
    place = _place(session, conn, draft, keys, fallback_days)
    created = not place.thread_ids
    thread = (
        conversations.new(session, draft)
        if created
        else conversations.merge(session, place.thread_ids)
    )
    draft.thread_id, draft.parent_id, draft.pref_parent_id = (
        thread.id,
        place.parent_id,
        place.parent_id,
    )
    draft.parent_pos, draft.by_subject, draft.named = place.parent_pos, place.by_subject, keys.named
    draft.id = new_message_id(session)
    places.insert_rows(conn, _INSERT_MESSAGE, [draft.row()])
    _record_nodes(session, conn, draft, keys.named, place.nodes, thread.id)
    places.noted(
        session,
        draft.list_id,
        places.Node(draft.message_id, thread.id, draft.id),
        places.Archived(draft.id, thread.id, draft.raw_id, draft.status),
        draft.thread_subject_norm if place.by_subject else "",
    )
    # Whatever names an id has a node for it (a placeholder at least): none, and nothing names it.
    touched = (
        forest.reparent_namers(session, draft.id, draft.message_id, draft.list_id)
        if draft.message_id in place.nodes
        else set()
    )
    if visible:
        count_visible(session, thread, draft)
    touched |= forest.rehang_by_subject(session, draft, fallback_days)
    if touched:
        for thread_id in {*touched, thread.id}:
            live = resolve(session, thread_id)
            if live is not None:
                conversations.fix_root(session, conversations.get(session, live.id))
        thread = conversations.get(session, conn.execute(_THREAD_OF, {"pk": draft.id}).scalar_one())
    return thread, created


@dataclass
class _Place:
    """Where threading inputs put a message: its parent, the threads it joins, the nodes of the ids
    it names."""

    parent_id: int | None
    parent_pos: int
    by_subject: bool
    thread_ids: list[int]
    nodes: dict[str, Any]


def _place(
    session: Session, conn: Connection, draft: Draft, keys: Keys, fallback_days: int
) -> _Place:
    """The parent a message's ids (else its subject and Date) choose, and the threads they join
    (conn: the session's connection, which the caller has at hand)."""
    nodes = places.nodes(session, draft.list_id, [draft.message_id, *(k for k, _ in keys.named)])
    archived = {
        mid: n.message_pk
        for mid, n in nodes.items()
        if n.message_pk is not None and mid != draft.message_id
    }
    parent_id, parent_pos = forest.header_parent(conn, keys.named, archived)
    by_subject = (
        not keys.named
        and fallback_days > 0
        and bool(draft.thread_subject_norm)
        and _is_reply(draft)
    )
    thread_ids = list(dict.fromkeys(n.thread_id for n in nodes.values()))
    if by_subject:
        near = forest.nearest_earlier(
            conn,
            draft.list_id,
            draft.thread_subject_norm,
            draft.thread_date,
            draft.message_id,
            fallback_days,
        )
        if near is not None:
            parent_id = near.id
            thread_ids.append(near.thread_id)
    return _Place(parent_id, parent_pos, by_subject, thread_ids, nodes)


def place_key(date: datetime, sha256: str) -> tuple[datetime, str]:
    """The rule among copies of one Message-ID: the copy with the smallest key places it (earliest
    Date, then bytes)."""
    return date, sha256


def place_copies(
    session: Session, pk: int, fallback_days: int, arrived: ParsedMessage | None = None
) -> tuple[Thread, bool]:
    """The copies' rule decides which copy of an archived message's id places it (another copy was
    just kept).

    When that is not the copy placing it so far, the id is placed anew by the winner's
    In-Reply-To, References, Date and Subject (replace); the message row shown stays.
    Its thread, and whether it was placed anew. arrived: the copy just kept, if parsed already.
    """
    conn = session.connection()
    copies = [*conn.execute(_PRIMARY, {"pk": pk}), *conn.execute(_VARIANTS_OF, {"pk": pk})]
    winner = min(copies, key=lambda c: place_key(c.date, c.sha256))
    if winner.variant_id == next((c.variant_id for c in copies if c.places), None):
        return conversations.get(session, conn.execute(_THREAD_OF, {"pk": pk}).scalar_one()), False
    conn.execute(
        update(_VARIANTS)
        .where(_VARIANTS.c.message_pk == pk)
        .values(places=_VARIANTS.c.id == (winner.variant_id or 0))
    )
    mine = arrived is not None and arrived.sha256 == winner.sha256
    copy = (
        arrived
        if mine and arrived is not None
        else parse(
            conn.execute(select(_RAW.c.data).where(_RAW.c.id == winner.raw_id)).scalar_one(),
            winner.received_at,
        )
    )
    draft = Draft(
        list_id=conn.execute(select(_MESSAGES.c.list_id).where(_MESSAGES.c.id == pk)).scalar_one(),
        message_id=copy.message_id,
        subject=copy.subject,
        date=winner.date,
        thread_date=winner.date,
        thread_subject_norm=copy.subject_norm,
    )
    keys = copy.thread_keys
    return replace(session, pk, draft, keys, fallback_days), True


def replace(session: Session, pk: int, draft: Draft, keys: Keys, fallback_days: int) -> Thread:
    """Place an archived message's id anew by other threading inputs; what they reach chooses again.
    Its thread.

    draft holds the inputs: list_id, message_id, subject, thread_date, thread_subject_norm.
    Like attach, only the rows its ids, its subject's window and its threads reach are read.
    """
    conn = session.connection()
    old = conn.execute(_PLACED, {"pk": pk}).one()
    places.forget(session)  # what the transaction knew of ids and subjects is moved here
    draft.id, draft.named = pk, keys.named
    touched = forest.set_parent(conn, pk, None)  # its own edge goes first: a loop through it opens
    conn.execute(delete(_REFS).where(_REFS.c.message_pk == pk))
    place = _place(session, conn, draft, keys, fallback_days)
    conn.execute(
        update(_MESSAGES)
        .where(_MESSAGES.c.id == pk)
        .values(
            thread_date=draft.thread_date,
            thread_subject_norm=draft.thread_subject_norm,
            by_subject=place.by_subject,
        )
    )
    _record_nodes(session, conn, draft, keys.named, place.nodes, old.thread_id)
    touched |= forest.set_parent(conn, pk, place.parent_id, place.parent_pos)
    touched |= forest.reparent_namers(session, pk, draft.message_id, draft.list_id)
    joined = forest.rechoose_by_subject(
        conn, pk, draft.list_id, old.thread_subject_norm, old.thread_date, fallback_days
    )
    touched |= forest.regroup(session, draft.list_id, {old.thread_id, *place.thread_ids, *joined})
    touched |= forest.rehang_by_subject(session, draft, fallback_days)
    for (
        thread_id
    ) in touched:  # roots, dates and counts from the rows: a message may have left or come
        live = resolve(session, thread_id)
        if live is not None:
            conversations.recount(session, conversations.get(session, live.id))
    places.forget(session)
    return conversations.get(session, conn.execute(_THREAD_OF, {"pk": pk}).scalar_one())


def _is_reply(msg: Any) -> bool:
    return is_reply_subject(msg.subject)


def _record_nodes(
    session: Session,
    conn: Connection,
    draft: Draft,
    named: list[tuple[str, int]],
    nodes: dict[str, Any],
    thread_id: int,
) -> None:
    """The message's own node (new or filled in), its key rows and placeholder nodes."""
    own = nodes.get(draft.message_id)
    placeholders = [ref for ref, _ in named if ref not in nodes]
    rows: list[dict[str, Any]] = [
        {"list_id": draft.list_id, "msgid": ref, "thread_id": thread_id, "message_pk": None}
        for ref in placeholders
    ]
    if own is None:
        rows.insert(
            0,
            {
                "list_id": draft.list_id,
                "msgid": draft.message_id,
                "thread_id": thread_id,
                "message_pk": draft.id,
            },
        )
    else:
        fill = {"message_pk": draft.id, "thread_id": thread_id}
        # a placeholder waiting to be written is filled in where it waits (no UPDATE, which
        # would write the batch's rows first); a written one by an UPDATE
        for row in places.waiting_among(
            conn, _NODES.name, "msgid", [draft.message_id], list_id=draft.list_id
        ):
            row.update(fill)
            break
        else:
            conn.execute(
                _FILL_NODE, {"list": draft.list_id, "node_msgid": draft.message_id, **fill}
            )
    if rows:
        places.insert_rows(conn, _INSERT_NODE, rows)
    if named:
        places.insert_rows(
            conn,
            _INSERT_REF,
            [
                {
                    "message_pk": draft.id,
                    "position": pos,
                    "list_id": draft.list_id,
                    "ref": ref,
                    "in_reply_to": irt,
                }
                for pos, (ref, irt) in enumerate(named)
            ],
        )
    for ref in placeholders:
        places.noted(session, draft.list_id, places.Node(ref, thread_id, None))
