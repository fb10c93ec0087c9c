"""The exact bytes of mail and of its attachments, stored once per content hash.

A batch stores its messages' bytes in one statement ahead of ingesting them (store_raws); a
message then finds its row's id without a statement (store_raw_id), or stores its bytes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from listgate import places, store
from listgate.mail.message import ParsedMessage
from listgate.models import Attachment, Blob, RawMessage
from listgate.store import table

_RAW = table(RawMessage)
RAW_AHEAD_BYTES = 256 * 1024  # a batch's messages up to this size are stored in one statement
_INSERT_ATTACHMENT = store.blind(insert(table(Attachment)))
_RAW_INSERTS: dict[bool, Any] = {}  # by dialect: PostgreSQL or not


def store_raw_id(session: Session, parsed: ParsedMessage) -> int:
    """The id of the message's raw bytes' row, stored once per content hash (one INSERT, no
    SAVEPOINT); none when store_raws stored them ahead in this transaction."""
    digest = parsed.sha256
    known = store.tx(session).raw_ids
    if digest not in known:
        _insert_raws(session, {digest: parsed.raw})
    return known[digest]


def store_raws(session: Session, messages: Sequence[ParsedMessage]) -> None:
    """Store a batch's bytes in one INSERT; store_raw_id then finds their ids without a statement
    (nor hashing them again).

    A message over RAW_AHEAD_BYTES is left to store_raw_id (one statement of many megabytes
    would hold them all in memory at once).
    """
    known = store.tx(session).raw_ids
    rows: dict[str, bytes] = {}
    for parsed in messages:
        raw = parsed.raw
        if len(raw) <= RAW_AHEAD_BYTES and parsed.sha256 not in known:
            rows.setdefault(parsed.sha256, raw)
    if rows:
        _insert_raws(session, rows)


def _insert_raws(session: Session, raws: dict[str, bytes]) -> None:
    """Insert the bytes by their hashes (ON CONFLICT DO NOTHING); learn every row's id.

    One statement object for any number of rows: SQLAlchemy sends the rows as multi-row VALUES
    (its "insertmanyvalues") from one compiled form, instead of compiling a statement of that
    many rows for each batch.
    """
    known = store.tx(session).raw_ids
    conn = session.connection()
    written = conn.execute(
        _insert_returning(session),
        [{"sha256": d, "size": len(raw), "data": raw} for d, raw in raws.items()],
    )
    known.update({r.sha256: r.id for r in written})
    stored_before = [d for d in raws if d not in known]  # the same bytes came earlier
    if stored_before:
        known.update(
            {r.sha256: r.id for r in conn.execute(store.RAWS_BY_HASH, {"hashes": stored_before})}
        )


def _insert_returning(session: Session) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, sha256 of raw bytes, built once a dialect."""
    backend = store.of(session)
    stmt = _RAW_INSERTS.get(backend.postgresql)
    if stmt is None:
        stmt = store.blind(
            backend.insert(RawMessage).on_conflict_do_nothing().returning(_RAW.c.id, _RAW.c.sha256)
        )
        _RAW_INSERTS[backend.postgresql] = stmt
    return stmt


def store_attachments(session: Session, parsed: ParsedMessage, message_pk: int) -> None:
    """Attachment rows, their content stored once per hash."""
    if not parsed.attachments:
        return
    conn = session.connection()
    places.insert_rows(  # with the batch's others too, before the attachment rows naming them
        conn,
        store.of(session).insert_ignore(Blob),
        [{"sha256": a.sha256, "size": len(a.data), "data": a.data} for a in parsed.attachments],
    )
    places.insert_rows(  # after the message's row, which may wait with the batch's others
        conn,
        _INSERT_ATTACHMENT,
        [
            {
                "message_pk": message_pk,
                "position": pos,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": len(a.data),
                "sha256": a.sha256,
            }
            for pos, a in enumerate(parsed.attachments)
        ],
    )
