"""What a transaction knows of a list's Message-IDs: their archived messages and thread nodes.

(And of its subjects: which have messages joined to a thread by subject alone.)

Ingest asks, for each message, whether its id is archived (the duplicate check) and where the
ids it names sit (the thread nodes). A batch reads both for all its messages at once
(`prefetch`: two queries per batch instead of two per message); what ingest writes is noted
here as it is written (`noted`), and whatever moves threads or nodes wholesale (merge, move,
split, regroup, a message placed anew) calls `forget`, after which ids are read again. The
knowledge lives in the transaction's state (listgate.store.tx), so any rollback drops it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, event, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

from listgate import store
from listgate.models import Message, ThreadNode
from listgate.store import table

_MESSAGES = table(Message)
_NODES = table(ThreadNode)
_CHUNK = 2000  # ids per IN list: far under every database's limit on bound parameters
_ARCHIVED_AMONG = store.apart(  # the written rows: archived_among adds the waiting ones
    select(
        _MESSAGES.c.message_id,
        _MESSAGES.c.id,
        _MESSAGES.c.thread_id,
        _MESSAGES.c.raw_id,
        _MESSAGES.c.status,
    ).where(
        _MESSAGES.c.list_id == bindparam("list_id"),
        _MESSAGES.c.message_id.in_(bindparam("ids", expanding=True)),
    )
)
_LINKED_AMONG = store.blind(
    select(_MESSAGES.c.thread_subject_norm)
    .where(
        _MESSAGES.c.list_id == bindparam("list_id"),
        _MESSAGES.c.by_subject.is_(True),
        _MESSAGES.c.thread_subject_norm.in_(bindparam("subjects", expanding=True)),
    )
    .distinct()
)
# the written nodes only: _read_nodes adds the batch's waiting ones (see `waiting`)
_NODES_AMONG = store.apart(
    select(_NODES.c.msgid, _NODES.c.thread_id, _NODES.c.message_pk).where(
        _NODES.c.list_id == bindparam("list_id"),
        _NODES.c.msgid.in_(bindparam("ids", expanding=True)),
    )
)


class Archived(NamedTuple):
    """The archived message with a Message-ID on a list: what the duplicate check needs."""

    id: int
    thread_id: int
    raw_id: int
    status: str


class Node(NamedTuple):
    """A Message-ID's place in a list's forest: its thread and message (None: a placeholder)."""

    msgid: str
    thread_id: int
    message_pk: int | None


def archived(session: Session, list_id: int, message_id: str) -> Archived | None:
    """The archived message with this Message-ID on the list, or None."""
    known = store.tx(session).archived
    if (list_id, message_id) not in known:
        _read_archived(session, list_id, [message_id])
    return known[(list_id, message_id)]


def nodes(session: Session, list_id: int, ids: Iterable[str]) -> dict[str, Node]:
    """The thread nodes of those ids that the list has (archived or placeholders), by id."""
    known = store.tx(session).nodes
    wanted = list(dict.fromkeys(ids))
    missing = [i for i in wanted if (list_id, i) not in known]
    if missing:
        _read_nodes(session, list_id, missing)
    return {i: node for i in wanted if (node := known[(list_id, i)]) is not None}


def linked_by_subject(session: Session, list_id: int, subject_norm: str) -> bool:
    """False when no message of the list joined a thread by this subject (True: not known)."""
    return bool(store.tx(session).subjects.get((list_id, subject_norm), True))


def prefetch(
    session: Session,
    list_id: int,
    own: Iterable[str],
    named: Iterable[str],
    subjects: Iterable[str] = (),
) -> None:
    """Read, in a few queries, what a batch will ask: its own ids' messages, every id's node,
    and which of its subjects have messages joined by subject."""
    state = store.tx(session)
    own_ids = [i for i in dict.fromkeys(own) if (list_id, i) not in state.archived]
    all_ids = [i for i in dict.fromkeys([*own_ids, *named]) if (list_id, i) not in state.nodes]
    if own_ids:
        _read_archived(session, list_id, own_ids)
    if all_ids:
        _read_nodes(session, list_id, all_ids)
    wanted = [t for t in dict.fromkeys(subjects) if t and (list_id, t) not in state.subjects]
    conn = session.connection()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        linked = set(conn.execute(_LINKED_AMONG, {"list_id": list_id, "subjects": chunk}).scalars())
        state.subjects.update({(list_id, t): t in linked for t in chunk})


def noted(
    session: Session,
    list_id: int,
    node: Node,
    message: Archived | None = None,
    subject_link: str = "",
) -> None:
    """Remember a node (and its message, and the subject it joined its thread by) just written."""
    state = store.tx(session)
    state.nodes[(list_id, node.msgid)] = node
    if message is not None:
        state.archived[(list_id, node.msgid)] = message
    if subject_link:
        state.subjects[(list_id, subject_link)] = True


def forget(session: Session) -> None:
    """Threads or nodes moved wholesale: read every id the list has again when next asked.

    An id known to be neither archived nor a node stays known: only ingest adds messages and
    nodes, and notes them (`noted`); a move, merge or split never does.
    The rows waiting are written first: a thread not known as new here has its row written
    (listgate.participants writes a participant of a thread not known as new at once)."""
    _write_pending(session.connection())
    state = store.tx(session)
    for known in (state.archived, state.nodes):
        for key in [key for key, found in known.items() if found is not None]:
            del known[key]
    state.participants.clear()
    state.new_threads.clear()  # a merge may have brought participants into one
    state.subjects.clear()


def archived_among(conn: Connection, list_id: int, ids: list[str]) -> dict[str, Archived]:
    """The archived messages with these Message-IDs on the list, by id (outside any session)."""
    found = {
        r.message_id: Archived(r.id, r.thread_id, r.raw_id, r.status)
        for r in _among(conn, _ARCHIVED_AMONG, list_id, ids)
    }
    for row in waiting_among(conn, _MESSAGES.name, "message_id", ids, list_id=list_id):
        found[row["message_id"]] = Archived(
            row["id"], row["thread_id"], row["raw_id"], row["status"]
        )
    return found


def _read_archived(session: Session, list_id: int, ids: list[str]) -> None:
    found = archived_among(session.connection(), list_id, ids)
    store.tx(session).archived.update({(list_id, i): found.get(i) for i in ids})


def _read_nodes(session: Session, list_id: int, ids: list[str]) -> None:
    conn = session.connection()
    found = {
        r.msgid: Node(r.msgid, r.thread_id, r.message_pk)
        for r in _among(conn, _NODES_AMONG, list_id, ids)
    }
    for row in waiting_among(conn, _NODES.name, "msgid", ids, list_id=list_id):
        found[row["msgid"]] = Node(row["msgid"], row["thread_id"], row["message_pk"])
    store.tx(session).nodes.update({(list_id, i): found.get(i) for i in ids})


def _among(conn: Connection, query: Executable, list_id: int, ids: list[str]) -> list[Any]:
    """The rows `query` finds for `ids` on the list, asked _CHUNK ids at a time."""
    return [
        row
        for start in range(0, len(ids), _CHUNK)
        for row in conn.execute(query, {"list_id": list_id, "ids": ids[start : start + _CHUNK]})
    ]


# Rows a batch only adds (threads, messages, thread nodes, reference rows, follows, outbox entries)
# go out in one executemany per kind, threads first, then messages.
# While a batch is under way (`defer_rows`), they wait on the connection; they are written
# before any statement not marked as leaving nodes and references alone (`store.blind`), while
# threads and messages rows wait also before any not marked as leaving them alone
# (`store.apart`), before a SAVEPOINT or its RELEASE (so a batch's rows fail inside the SAVEPOINT
# that covers the batch) and before the COMMIT, and forgotten by a rollback to a savepoint or of
# all. They belong to one transaction: a connection whose transaction ended otherwise never
# carries them on.
_ROWS = "listgate.rows"  # conn.info key: (transaction, Pending) while deferring
Pending = dict[Any, tuple[list[dict[str, Any]], list[Any]]]  # rows, and what takes their ids


def defer_rows(session: Session) -> None:
    """From now until this transaction ends, node and reference rows are written in bulk."""
    conn = session.connection()
    engine = conn.engine
    if not event.contains(engine, "before_execute", _before_execute):
        event.listen(engine, "before_execute", _before_execute)
        event.listen(engine, "savepoint", _write_pending)
        event.listen(engine, "release_savepoint", _write_pending)  # inside the batch's SAVEPOINT
        event.listen(engine, "commit", _commit)
        event.listen(engine, "rollback_savepoint", _drop_pending)
        event.listen(engine, "rollback", _stop)
    if _pending(conn) is None:
        conn.info[_ROWS] = (conn.get_transaction(), {})


def insert_rows(
    conn: Connection,
    statement: Any,
    rows: list[dict[str, Any]],
    into: list[Any] | None = None,
) -> None:
    """INSERT rows now, or with the batch's others when it defers them.

    Rows go together when their statement is the same object: build it once.
    into: for a statement RETURNING the new ids in the rows' order, the objects whose `id` they
    become (set once the rows are written).
    """
    pending = _pending(conn)
    if pending is None:
        _write(conn, statement, rows, into or [])
    else:
        waiting = pending.setdefault(statement, ([], []))
        waiting[0].extend(rows)
        waiting[1].extend(into or [])


def waiting(conn: Connection, table_name: str) -> list[dict[str, Any]]:
    """The rows of that table waiting on this connection to be written, oldest first.

    Rows only wait while nothing has changed them: any UPDATE or DELETE is unmarked and writes
    them first. So a look-up can read the written rows with a statement marked `store.apart`
    (which leaves them waiting) and add these: the same rows, without writing the batch's rows
    early (a subject's or a root's look-up did that about once every ten messages, each time
    one more statement per kind of row, and one more write of the search index).
    """
    pending = _pending(conn)
    if not pending:
        return []
    return [
        row
        for statement, (rows, _) in pending.items()
        if statement.table.name == table_name
        for row in rows
    ]


def waiting_among(
    conn: Connection, table_name: str, column: str, values: Iterable[Any], **equal: Any
) -> list[dict[str, Any]]:
    """The rows of that table waiting on this connection whose column is one of values and whose
    other columns named in equal have those values, oldest first (see `waiting`)."""
    wanted = set(values)
    return [
        row
        for row in waiting(conn, table_name)
        if row[column] in wanted and all(row[k] == v for k, v in equal.items())
    ]


def _write(conn: Connection, statement: Any, rows: list[dict[str, Any]], into: list[Any]) -> None:
    result = conn.execute(statement, rows)
    for obj, new_id in zip(into, result.scalars() if into else (), strict=True):
        obj.id = new_id


def _pending(conn: Connection) -> Pending | None:
    """The rows waiting on this connection for its current transaction (None: not deferring)."""
    held = conn.info.get(_ROWS)
    if held is None:
        return None
    if held[0] is not conn.get_transaction():  # left by a transaction that ended unseen
        del conn.info[_ROWS]
        return None
    pending: Pending = held[1]
    return pending


def _write_pending(conn: Connection, *_: Any) -> None:
    pending = _pending(conn)
    if pending:
        # threads rows first, then messages rows: the other rows name them
        batches = sorted(pending.items(), key=lambda kind: _ORDER.get(kind[0].table.name, 2))
        pending.clear()
        for statement, (rows, into) in batches:
            _write(conn, store.blind(statement), rows, into)


_ORDER = {"threads": 0, "messages": 1}  # rows written before any statement not marked apart


def _named(statement: Any) -> bool:
    return statement.table.name in _ORDER


def _before_execute(
    conn: Connection, statement: Any, _multi: Any, _params: Any, given: Any
) -> None:
    if _ROWS not in conn.info:
        return
    options = {  # the statement's own, and those it is run with (Session.get's)
        **(statement.get_execution_options() if isinstance(statement, Executable) else {}),
        **given,
    }
    if not options.get(store.BLIND) or (
        not options.get(store.APART) and any(_named(s) for s in _pending(conn) or ())
    ):
        _write_pending(conn)


def _commit(conn: Connection) -> None:
    _write_pending(conn)
    conn.info.pop(_ROWS, None)


def _drop_pending(conn: Connection, *_: Any) -> None:
    pending = _pending(conn)
    if pending:
        pending.clear()


def _stop(conn: Connection) -> None:
    conn.info.pop(_ROWS, None)
