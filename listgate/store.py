"""The store layer: the hot path's statements and every SQLite/PostgreSQL difference, in one place.

A `Store` is made once per database kind and kept (`store.of(session)`); the code that behaves
differently on SQLite and PostgreSQL asks it (`st.locks_lists`, `st.insert(table)`,
`st.relax_commit(conn)`...) instead of reading the dialect's name. Statements are built once:
the dialect-neutral ones of the per-message path as constants below, the dialect-specific ones
on the Store. What a transaction remembers about itself (the lists it locked, the threads it
loaded) is one typed `TxState`, not string keys in `session.info`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    String,
    Table,
    any_,
    bindparam,
    event,
    exists,
    func,
    null,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.dml import Insert

from listgate.driver import DriverStatement
from listgate.models import (
    Ban,
    FactsEpoch,
    MailingList,
    Message,
    MessageVariant,
    Person,
    RawMessage,
    Subscription,
)
from listgate.states import ListPolicy, SubscriptionKind, SubscriptionState

SQLITE, POSTGRESQL = "sqlite", "postgresql"


def table(model: type[Any]) -> Table:
    """The Table of a mapped class (declarative types it as a FromClause; it is a Table)."""
    found = model.__table__
    if not isinstance(found, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return found


Bind = Session | Connection | Engine
# What Store.insert returns: either dialect's INSERT has on_conflict_do_nothing/do_update.
UpsertInsert = postgresql.Insert | sqlite.Insert

_MSG, _RAW, _SUBS, _PEOPLE = (
    table(Message),
    table(RawMessage),
    table(Subscription),
    table(Person),
)
_LISTS, _BANS, _VARIANTS = table(MailingList), table(Ban), table(MessageVariant)
_EPOCH = table(FactsEpoch)

# lists_with_facts: the facts' labels
_FACTS = ("lg_banned", "lg_archived", "lg_members", "lg_epoch")
# The columns of a list the decisions at RCPT and DATA read (listgate.admission, listgate.privacy)
DECIDING = ("id", "name", "policy", "private", "moderators", "owners")
BLIND = "listgate_blind_to_nodes"  # execution option: reads and writes no nodes or references
APART = "listgate_apart_from_messages"  # execution option: blind, and no messages row either
_SEES_NODES = frozenset({"thread_nodes", "message_refs"})  # the tables a batch defers
# tables whose rows name no message (no foreign key to messages, no trigger reading them)
_APART = frozenset({"thread_participants", "raw_messages", "blobs", "bans", "subscriptions"})


def blind(statement: Any) -> Any:
    """The statement marked as reading and writing no thread nodes and no reference rows.

    While a batch defers those rows (listgate.places), only unmarked statements wait for them.
    """
    return statement.execution_options(**{BLIND: True})


def apart(statement: Any) -> Any:
    """The statement marked blind (above) and as reading and writing no messages or threads row,
    nor a row that names one (but a participant of a thread this transaction started): the
    batch's new messages and threads rows, deferred too, need not be written before it.
    """
    return statement.execution_options(**{BLIND: True, APART: True})


# The per-message look-ups (gateway DATA, archiver, import), dialect-neutral, built once.
RAW_BY_HASH = apart(select(_RAW.c.id).where(_RAW.c.sha256 == bindparam("sha256")))
RAWS_BY_HASH = apart(
    select(_RAW.c.id, _RAW.c.sha256).where(_RAW.c.sha256.in_(bindparam("hashes", expanding=True)))
)
VARIANT_OF = blind(
    select(_VARIANTS.c.id).where(
        _VARIANTS.c.message_pk == bindparam("pk"), _VARIANTS.c.raw_id == bindparam("raw_id")
    )
)
BANNED = apart(
    select(_BANS.c.id)
    .where(_BANS.c.list_id == bindparam("list_id"), _BANS.c.address == bindparam("address"))
    .limit(1)
)
BANNED_AMONG = apart(
    select(_BANS.c.address).where(
        _BANS.c.list_id == bindparam("list_id"),
        _BANS.c.address.in_(bindparam("addresses", expanding=True)),
    )
)
# A subscription's kind as an expression, not the column: SQLite, without statistics, would
# otherwise walk every subscriber of the list by (list, kind, status) instead of the addresses.
_KIND = type_coerce(_SUBS.c.kind, String) + ""
# A member (a subscriptions row's conditions): on the list or its digest, active or suspended by
# bounces (bounces stop the mail, not the membership: a member whose mailbox was full for a week
# still posts and reads the archive).
MEMBER_STATES = (SubscriptionState.ACTIVE, SubscriptionState.SUSPENDED)
MEMBER = (
    or_(_KIND == SubscriptionKind.LIST, _KIND == SubscriptionKind.DIGEST),
    or_(*(_SUBS.c.status == state for state in MEMBER_STATES)),
)
MEMBERS_AMONG = apart(
    select(_SUBS.c.address).where(
        _SUBS.c.list_id == bindparam("list_id"),
        _SUBS.c.address.in_(bindparam("addresses", expanding=True)),
        *MEMBER,
    )
)
LOCK_LIST = (
    select(MailingList)
    .where(MailingList.id == bindparam("id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)  # reloaded: the object may carry counts read before another writer's commit
# Not opted out of following, and no live follow or mute of this thread yet (no IN list: a
# statement run as one executemany takes no expanding parameter).
_MAY_FOLLOW = ~or_(
    exists().where(_PEOPLE.c.address == bindparam("address"), _PEOPLE.c.auto_follow.is_(False)),
    exists().where(
        _SUBS.c.list_id == bindparam("list_id"),
        _SUBS.c.address == bindparam("address"),
        or_(_SUBS.c.kind == SubscriptionKind.THREAD, _SUBS.c.kind == SubscriptionKind.MUTE),
        _SUBS.c.thread_key == bindparam("thread_key"),
        _SUBS.c.status != SubscriptionState.ENDED,
    ),
)
_FOLLOWED = ("list_id", "address", "kind", "thread_key", "status", "created_at", "confirmed_at")


class Store:
    """What differs between SQLite and PostgreSQL, and the statements that differ, for one of
    them."""

    def __init__(self, dialect: str) -> None:
        if dialect not in (SQLITE, POSTGRESQL):
            raise ValueError(f"listgate stores into SQLite or PostgreSQL, not {dialect!r}")
        self.dialect = dialect
        self._ignoring: dict[str, Insert] = {}
        self._adding: dict[tuple[str, tuple[str, ...], str], UpsertInsert] = {}

    @property
    def postgresql(self) -> bool:
        """True on PostgreSQL."""
        return self.dialect == POSTGRESQL

    @property
    def sqlite(self) -> bool:
        """True on SQLite."""
        return self.dialect == SQLITE

    @property
    def locks_lists(self) -> bool:
        """Writers to one list serialise on its row (PostgreSQL); on SQLite the write lock already
        does."""
        return self.postgresql

    @property
    def spool_apart(self) -> bool:
        """The spool is a database file of its own (SQLite: appends never wait for the archive's
        write lock)."""
        return self.sqlite

    @property
    def ranked_search(self) -> bool:
        """Full-text search by the tsvector column (PostgreSQL), else by the FTS5 table (SQLite)."""
        return self.postgresql

    def insert(self, model: Any) -> UpsertInsert:
        """INSERT for a model or table in this dialect (it has on_conflict_do_nothing/do_update)."""
        target = _target(model)
        return postgresql.insert(target) if self.postgresql else sqlite.insert(target)

    def insert_ignore(self, model: Any) -> Insert:
        """INSERT … ON CONFLICT DO NOTHING for a model or table, its row count kept; built once.

        Marked `blind` unless it writes thread nodes or reference rows, and the same object each
        time: a batch's deferred rows go together only under one statement object
        (listgate.places.insert_rows).
        """
        target = _target(model)
        known = self._ignoring.get(target.name)
        if known is not None:
            return known
        # its row count says whether the row went in: psycopg tells it only when asked (else -1)
        stmt: Insert = (
            self.insert(target).on_conflict_do_nothing().execution_options(preserve_rowcount=True)
        )
        if target.name in _APART:
            stmt = apart(stmt)
        elif target.name not in _SEES_NODES:
            stmt = blind(stmt)
        self._ignoring[target.name] = stmt
        return stmt

    @functools.cached_property
    def auto_follow(self) -> Any:
        """Follow the thread :thread_key one posted in (:now), unless one turned that off or has a
        live follow or mute of it; an ended follow is brought back. One statement with its check,
        so a batch's follows go out together (listgate.places.insert_rows)."""
        c = _SUBS.c
        row = select(
            *(bindparam(name, type_=c[name].type) for name in _FOLLOWED[:5]),
            bindparam("now", type_=c.created_at.type),
            bindparam("now", type_=c.confirmed_at.type),
        ).where(_MAY_FOLLOW)  # a WHERE also keeps SQLite from reading ON CONFLICT as a join's
        stmt = self.insert(_SUBS).from_select(_FOLLOWED, row)
        return apart(  # a follow names a thread by id, never a message, node or reference row
            stmt.on_conflict_do_update(
                index_elements=["list_id", "address", "kind", "thread_key"],
                set_={  # as subscriptions.start: active from now, a fresh bounce score
                    "status": SubscriptionState.ACTIVE,
                    "confirmed_at": stmt.excluded.confirmed_at,
                    "ended_at": None,
                    "end_reason": "",
                    "bounce_score": 0.0,
                },
                where=_SUBS.c.status == SubscriptionState.ENDED,
            )
        )

    @functools.cached_property
    def lists_with_facts(self) -> Any:
        """The lists called :names (their DECIDING columns), each with what a batch of posts asks
        of it, in one statement.

        Per list, as JSON arrays: which of :addresses it bans; its archived messages among
        :message_ids ([Message-ID, id, thread, raw, status]); on a members-only list, its active
        list and digest subscribers among :froms. (PostgreSQL's json_agg of no rows is NULL.)
        """
        many = func.json_agg if self.postgresql else func.json_group_array
        row = func.json_build_array if self.postgresql else func.json_array
        banned = select(many(_BANS.c.address, type_=JSON)).where(
            _BANS.c.list_id == _LISTS.c.id, self.among(_BANS.c.address, "addresses")
        )
        archived = select(
            many(
                row(_MSG.c.message_id, _MSG.c.id, _MSG.c.thread_id, _MSG.c.raw_id, _MSG.c.status),
                type_=JSON,
            )
        ).where(_MSG.c.list_id == _LISTS.c.id, self.among(_MSG.c.message_id, "message_ids"))
        members = select(many(_SUBS.c.address, type_=JSON)).where(
            _LISTS.c.policy == ListPolicy.MEMBERS,
            _SUBS.c.list_id == _LISTS.c.id,
            self.among(_SUBS.c.address, "froms"),
            *MEMBER,
        )
        # PostgreSQL: the facts epoch in the same snapshot as the facts (listgate.factcache)
        epoch = (
            select(_EPOCH.c.epoch).where(_EPOCH.c.id == 1).scalar_subquery()
            if self.postgresql
            else null()
        )
        return blind(
            select(
                *(_LISTS.c[name] for name in DECIDING),
                banned.scalar_subquery().label(_FACTS[0]),
                archived.scalar_subquery().label(_FACTS[1]),
                members.scalar_subquery().label(_FACTS[2]),
                epoch.label(_FACTS[3]),
            ).where(self.among(_LISTS.c.name, "names"))
        )

    @functools.cached_property
    def facts_on_driver(self) -> DriverStatement:
        """lists_with_facts, run on the driver's cursor (the gateway runs it for every batch)."""
        return DriverStatement(self.lists_with_facts)

    def among(self, column: Any, name: str) -> Any:
        """column IN the list of strings bound as :name, in one parameter however many there are:
        the statement's text stays the same (parsed and planned once: SQLite's statement cache,
        PostgreSQL's prepared statements)."""
        if self.postgresql:
            return column == any_(bindparam(name, type_=postgresql.ARRAY(String)))
        values = func.json_each(bindparam(name, type_=JSON)).table_valued("value")
        return column.in_(select(values.c.value))

    def upsert_adding(self, model: Any, keys: tuple[str, ...], column: str) -> UpsertInsert:
        """INSERT, or on a conflict over keys add the new row's column to the stored one; built
        once.

        (A counter: the stored value grows by the new row's.)
        """
        target = _target(model)
        stmt = self._adding.get((target.name, keys, column))
        if stmt is None:
            new = self.insert(target)
            stmt = self._adding[(target.name, keys, column)] = new.on_conflict_do_update(
                index_elements=list(keys), set_={column: target.c[column] + new.excluded[column]}
            )
        return stmt

    def relax_commit(self, conn: Connection) -> None:
        """PostgreSQL: this transaction's COMMIT does not wait for the WAL flush (a crash may redo
        it, never lose it)."""
        if self.postgresql:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")

    def transaction_alive(self, session: Session) -> bool:
        """False when the database ended the session's transaction behind its back, or the
        connection is lost."""
        try:
            conn = session.connection()
            if conn.invalidated:
                return False
            if (
                self.sqlite
            ):  # SQLite rolls back on SQLITE_FULL/IOERR without telling: ask the connection
                return bool(conn.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]
            conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure to use it means it is gone
            return False


def _target(model: Any) -> Table:
    """A Table, or the Table of a mapped class."""
    return model if isinstance(model, Table) else table(model)


@functools.cache
def _store(dialect: str) -> Store:
    return Store(dialect)


def of(bind: Bind) -> Store:
    """The Store of the database bind (a session, connection or engine) works on."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return _store(engine.dialect.name)


@dataclass
class TxState:
    """What one transaction of a session remembers about itself; a rollback (a savepoint's too)
    forgets it."""

    transaction: SessionTransaction | None
    locked_lists: set[int] = field(default_factory=set)  # PostgreSQL: list rows locked FOR UPDATE
    lists: dict[int, Any] = field(default_factory=dict)  # MailingList objects by id (held strongly)
    # Thread objects loaded or written (held strongly)
    threads: dict[int, Any] = field(default_factory=dict)
    # listgate.places: what this transaction knows of Message-IDs, keyed (list id, Message-ID)
    archived: dict[tuple[int, str], Any] = field(default_factory=dict)
    nodes: dict[tuple[int, str], Any] = field(default_factory=dict)
    # (thread, address): a participant row there? (known or written), and threads started here
    participants: dict[tuple[int, str], bool] = field(default_factory=dict)
    new_threads: set[int] = field(default_factory=set)
    subjects: dict[tuple[int, str], bool] = field(default_factory=dict)  # joined by subject?
    bans: dict[tuple[int, str], bool] = field(default_factory=dict)  # (list, address) banned?
    raw_ids: dict[str, int] = field(default_factory=dict)  # raw_messages ids by sha256, written
    message_ids: list[int] = field(default_factory=list)  # taken for new messages rows, not used
    thread_ids: list[int] = field(default_factory=list)  # taken for new threads rows, not used


_TX = "listgate.tx"  # the one key listgate keeps in session.info


def tx(session: Session) -> TxState:
    """The state of the session's current transaction (new for a new transaction)."""
    state: TxState | None = session.info.get(_TX)
    current = session.get_transaction()
    if state is None or state.transaction is not current:
        if state is None:
            event.listen(session, "after_soft_rollback", _forget)
        state = session.info[_TX] = TxState(current)
    return state


def _forget(session: Session, _previous: Any) -> None:
    """After any rollback: threads are reloaded when next needed (maybe gone), locks taken again (a
    savepoint's are released)."""
    state: TxState | None = session.info.get(_TX)
    if state is None:
        return
    for thread in state.threads.values():
        if thread in session:
            session.expunge(thread)
    state.threads.clear()
    state.locked_lists.clear()
    state.lists.clear()
    state.archived.clear()
    state.nodes.clear()
    state.participants.clear()
    state.new_threads.clear()
    state.subjects.clear()
    state.bans.clear()
    state.raw_ids.clear()
    state.message_ids.clear()
    state.thread_ids.clear()


_IDS_AHEAD = 64  # PostgreSQL: new ids taken from a table's sequence at a time
# SQLite: the largest id given so far, a deleted row's too (AUTOINCREMENT's sqlite_sequence,
# migration 0019): an id in a URL never names another post or thread later.
# Marked apart: the rows waiting to be written took their ids from here (see _new_id).
_NEXT_IDS = {
    name: apart(
        text(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) FROM generate_series(1, :n)")
    )
    for name in ("messages", "threads")
}
_LAST_ID = {
    name: apart(
        text(
            f"SELECT max(coalesce((SELECT max(id) FROM {name}), 0),"
            f" coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{name}'), 0))"
        )
    )
    for name in ("messages", "threads")
}


def new_message_id(session: Session) -> int:
    """The id the next new messages row of this transaction takes (its INSERT can then wait to go
    with the batch's others: listgate.places.insert_rows)."""
    return _new_id(session, "messages", tx(session).message_ids)


def new_thread_id(session: Session) -> int:
    """The id the next new threads row of this transaction takes (likewise: no INSERT … RETURNING
    per new thread)."""
    return _new_id(session, "threads", tx(session).thread_ids)


def _new_id(session: Session, name: str, free: list[int]) -> int:
    """The next id of table `name` for this transaction, from its ids taken and not used (`free`).

    PostgreSQL hands them out from the table's sequence, a few at a time (an id taken and
    not used is a gap, as a rolled-back INSERT leaves one). SQLite's writer holds the database's
    write lock (BEGIN IMMEDIATE) for its whole transaction, so the ids after the largest are
    its own until it ends; a rollback (a savepoint's too) forgets them.
    """
    if not free:
        conn = session.connection()
        if of(session).postgresql:
            free.extend(sorted(conn.execute(_NEXT_IDS[name], {"n": _IDS_AHEAD}).scalars()))
        else:
            free.append(conn.execute(_LAST_ID[name]).scalar_one() + 1)
    new_id = free.pop(0)
    if not free and not of(session).postgresql:
        free.append(new_id + 1)
    return new_id


def lock_list(session: Session, mlist: MailingList) -> None:
    """Serialise writers per list (PostgreSQL), once per transaction; SQLite writers already hold
    the write lock."""
    if session.bind is None or not of(session).locks_lists:
        return
    locked = tx(session).locked_lists
    if mlist.id not in locked:
        session.execute(LOCK_LIST, {"id": mlist.id}).scalars().one()
        locked.add(mlist.id)


class ListFacts(NamedTuple):
    """A list and what a batch of posts asks of it (Store.lists_with_facts)."""

    mlist: MailingList  # its DECIDING columns only: read, never changed or added to a session
    banned: set[str]  # the addresses asked that it bans
    archived: list[tuple[str, int, int, int, str]]  # (Message-ID, id, thread, raw, status)
    members: set[str]  # the From addresses asked that subscribe to it (members-only lists)
    epoch: int | None = None  # PostgreSQL: the facts epoch these were read with (None: no row)


# MailingList objects lists_with_facts made, by the DECIDING values they were made from: a list
# whose row reads the same is not made again; a change to any of them reads as another key.
_AS_READ: dict[tuple[Any, ...], MailingList] = {}
_AS_READ_KEPT = 1024  # more than that many (lists, or changes of them): start afresh


def lists_with_facts(
    conn: Connection,
    names: Iterable[str],
    addresses: list[str],
    message_ids: list[str],
    froms: list[str],
) -> dict[str, ListFacts]:
    """The lists called names (ASCII, any case), with their facts about these posts: one SELECT,
    on the driver's cursor of conn (listgate.driver: compiled once, no SQLAlchemy execution).

    The list is read at every call (its DECIDING columns, with the facts); the MailingList made
    from them is kept while they read the same, and shared: a caller only reads it.
    """
    wanted = {name: name.lower() for name in names if name.isascii()}
    if not wanted:
        return {}
    rows = of(conn).facts_on_driver.rows(
        conn,
        {
            "names": sorted(set(wanted.values())),
            "addresses": addresses,
            "message_ids": message_ids,
            "froms": froms,
        },
    )
    found = {}
    width = len(DECIDING)
    for row in rows:
        columns = tuple(row[:width])
        mlist = _AS_READ.get(columns)
        if mlist is None:
            if len(_AS_READ) >= _AS_READ_KEPT:
                _AS_READ.clear()
            mlist = _AS_READ[columns] = MailingList(**dict(zip(DECIDING, columns, strict=True)))
        banned, archived, members = (value or [] for value in row[width : width + 3])
        found[mlist.name] = ListFacts(
            mlist, set(banned), [tuple(a) for a in archived], set(members), row[width + 3]
        )
    return {name: found[lower] for name, lower in wanted.items() if lower in found}
