"""The spool: mail accepted at SMTP DATA, its exact bytes and envelope durable before the 250.

On PostgreSQL it is the `spool` table of the database itself; archivers claim rows with
FOR UPDATE SKIP LOCKED and delete them in the transaction that archives them. On SQLite it is
a database file of its own beside the archive (NAME.spool.sqlite3): the gateway's appends then
never wait for the archive's write lock, which the archiver holds a batch at a time. There the
archive records, per spool file (its generation), the highest id archived (spool_marks) in the
archiving transaction; rows up to the mark are cleared afterwards, so a message is archived
once even when the archiver dies in between. Rows that failed to archive stay in the archive's
own table (state failed, with the error) until `listgate spool retry` puts them back in line.
Mail archived and not posted (automatic, a ban added after the 250) is in the not-posted queue
(listgate.notposted), not here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from listgate import store
from listgate.db import sqlite_engine, writer
from listgate.filewatch import FileWatch
from listgate.models import Message, SpooledMail, SpoolMark
from listgate.models.archive import UTCDateTime
from listgate.models.epoch import EPOCH_TABLE
from listgate.states import SpoolState
from listgate.store import table

SPOOL = table(SpooledMail)
MARKS = table(SpoolMark)
MESSAGES = Message.__tablename__
_SIDE = MetaData()
SIDE_SPOOL = Table(
    "spool",
    _SIDE,
    Column("id", Integer, primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("mail_from", Text),
    Column("rcpt_tos", Text, nullable=False),
    Column("message_id", String(1000), nullable=False),
    Column("counts", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("done_at", UTCDateTime),
    sqlite_autoincrement=True,
)  # ids never reused: the mark compares them
SIDE_META = Table("spool_meta", _SIDE, Column("generation", String(64), primary_key=True))
CLEAR_EVERY = 1.0  # seconds between clears of archived rows while the archiver is busy
_PENDING_COLUMNS = ("id", "received_at", "mail_from", "rcpt_tos", "message_id", "counts", "raw")
# A row as Spool.write_rows takes it: these columns, in this order
ROW_COLUMNS = _PENDING_COLUMNS[1:] + ("state", "reason")
UNBOUNDED = 2**62  # a budget of bytes no batch reaches
_PG_CACHED = 64  # PostgreSQL: INSERTs of up to this many rows keep their SQL (a group-commit batch)


def _values(n: int) -> str:
    """PostgreSQL: the VALUES of n spool rows (ROW_COLUMNS), each value a parameter of its own in
    psycopg's binary format."""
    row = f"({', '.join(['%b'] * len(ROW_COLUMNS))})"
    return ", ".join([row] * n)


Counts = tuple[tuple[str, str, int], ...]  # (name, label, how many): once per counter


@dataclass(frozen=True)
class Spooled:
    """What the gateway appends for one answered message (no recipients: only its counts)."""

    raw: bytes
    mail_from: str | None
    rcpt_tos: tuple[str, ...]
    message_id: str
    counts: Counts = ()


@dataclass(frozen=True)
class Depth:
    """What waits in the spool, for `listgate status` and /metrics."""

    pending: int = 0
    oldest_seconds: float = 0.0  # age of the oldest message not archived yet
    failed: int = 0  # kept after archiving raised: `listgate spool retry` tries them again


class Spool:
    """The spool of one archive database (see the module's docstring for the two shapes)."""

    def __init__(self, engine: Engine) -> None:
        self.main = engine
        self.separate = store.of(engine).spool_apart
        self.generation = ""
        self._cleared, self._cleared_at = 0, 0.0  # the last clear_through: its mark, its time
        self._retry_at = 0.0  # after a clear that failed: not before then
        # SQLite: tells an idle archiver whether the spool file changed (listgate.filewatch)
        self.watch: FileWatch | None = None
        if not self.separate:
            self.engine = self.reader = engine
            self.table = SPOOL
            self._prepare()
            return
        path = Path(engine.url.database or "listgate.sqlite3")
        side = path.with_suffix(".spool" + path.suffix)
        if (
            not side.exists()
        ):  # created before the engine, which then opens it for writing or not at all (listgate.db)
            side.touch()
        self.reader = sqlite_engine(f"sqlite:///{side}", synchronous="FULL")
        # BEGIN IMMEDIATE: appends never wait for a reader's upgrade
        self.engine = writer(self.reader)
        self.table = SIDE_SPOOL
        self.watch = FileWatch(side)
        self.generation = self._generation()
        self._prepare()

    def _prepare(self) -> None:
        self.postgresql = store.of(self.engine).postgresql
        names = ", ".join(ROW_COLUMNS)
        self._sql = f"INSERT INTO {self.table.name} ({names}) VALUES "
        self._sized: dict[int, str] = {}  # PostgreSQL: the INSERT of n rows
        self._checked: dict[int, str] = {}  # PostgreSQL: the checked INSERT of n rows (append_if)
        if not self.postgresql:
            self._sql += f"({', '.join('?' * len(ROW_COLUMNS))})"
        process = self.table.c.received_at.type.bind_processor(self.engine.dialect)
        # received_at as the driver takes it (SQLite: the text SQLAlchemy would have bound)
        self._when: Callable[[datetime], Any] = process or (lambda value: value)

    def _generation(self) -> str:
        """The spool file's generation, made (with its tables) on first use; a read alone when it
        exists."""
        try:
            with self.reader.connect() as conn:
                found = conn.execute(select(SIDE_META.c.generation)).scalar()
        except OperationalError:  # no tables yet
            found = None
        if found:
            return str(found)
        with self.engine.begin() as conn:
            _SIDE.create_all(conn)
            found = conn.execute(select(SIDE_META.c.generation)).scalar()
            if not found:
                found = uuid.uuid4().hex
                conn.execute(insert(SIDE_META), {"generation": found})
        return str(found)

    def close(self) -> None:
        """Release the spool file's connections (the archive's engine is the caller's)."""
        if self.separate:
            self.reader.dispose()
        if self.watch is not None:
            self.watch.close()

    @property
    def cleared(self) -> int:
        """SQLite: the mark the spool file was last cleared through by this process."""
        return self._cleared

    def append(self, mails: Sequence[Spooled], conn: PoolProxiedConnection | None = None) -> None:
        """Add answered messages, durably, before the 250 (SQLite: synchronous=FULL, one fsync).

        conn: a connection of the engine's pool the caller holds (write_rows). Nothing is read
        back: the ids are the archiver's business.
        """
        self.write_rows(self._rows(mails), conn)

    def append_if(
        self,
        mails: Sequence[Spooled],
        conn: PoolProxiedConnection,
        epoch: int,
        unarchived: Sequence[tuple[int, str]],
    ) -> bool:
        """PostgreSQL: append, in one statement, only if the facts epoch still reads epoch and no
        message is archived under any of the (list id, Message-ID) pairs unarchived: True when
        every row went in, False when none did (the gateway's cache was stale: gateway.factcache).

        Checked in the INSERT's own snapshot, before its commit: nothing committed before this
        statement began (a ban, an archived message) is missed.
        """
        assert self.postgresql
        lists, ids = [p[0] for p in unarchived], [p[1] for p in unarchived]
        return self.write_rows(self._rows(mails), conn, check=(epoch, lists, ids))

    def queue_append(self, conn: PoolProxiedConnection, mails: Sequence[Spooled]) -> None:
        """PostgreSQL: append's INSERT on a pooled connection the caller holds, in pipeline mode:
        queued, not waited for (listgate.driver.Ahead: the caller's pipeline commits it with its
        Sync, or not at all; the connection in autocommit, its failure the caller's to handle)."""
        assert self.postgresql and mails
        rows = self._rows(mails)
        # not closed here: the pipeline sets its result (or raises its error) at the Sync
        self._checkout(conn).cursor().execute(
            self._rows_sql(len(rows)), [v for row in rows for v in row]
        )

    def _rows(self, mails: Sequence[Spooled]) -> list[tuple[Any, ...]]:
        """The spool's rows (ROW_COLUMNS) of answered messages, received now."""
        now = self._when(datetime.now(UTC))
        pending = SpoolState.PENDING.value
        return [
            (
                now,
                m.mail_from,
                "\n".join(m.rcpt_tos),
                m.message_id[:1000],
                _counts_text(m.counts),
                m.raw,
                pending,
                "",
            )
            for m in mails
        ]

    def write_rows(
        self,
        rows: Sequence[tuple[Any, ...]],
        conn: PoolProxiedConnection | None = None,
        *,
        check: tuple[int, list[int], list[str]] | None = None,
    ) -> bool:
        """Insert rows (ROW_COLUMNS, received_at as the driver takes it) in one durable
        transaction: every row is in the spool when this returns, or none is and it raises.

        The one way rows enter the spool. On the driver's own cursor of a pooled connection
        (`Engine.raw_connection`: the pool checks it out, with the engine's events, pings a
        PostgreSQL connection idle a while, and takes it back): no SQLAlchemy statement
        execution, no `begin` event. SQLite: BEGIN IMMEDIATE, one prepared INSERT executemany'd
        over the rows, COMMIT (synchronous=FULL: on disk when COMMIT returns). PostgreSQL: one
        INSERT … VALUES of every row in autocommit: one statement, all rows or none, its commit
        waiting for the WAL flush. Whatever fails, the connection is invalidated (closed,
        never pooled again): a full disk, a read-only file or a lost server ends with the
        database's, not with a connection the pool keeps.

        conn: a connection of this engine's pool the caller checked out and closes (the gateway's
        writer: the one its batch's look-ups ran on, PostgreSQL), used as it is: the same
        statement on it, its autocommit setting left as found; invalidated if it fails.
        check (PostgreSQL, append_if): the rows go in only if it holds; False when they did not.
        """
        if not rows:
            return True
        inserted = True
        held = conn is not None
        conn = self._checkout(conn)
        try:
            cursor = conn.cursor()
            try:
                if self.postgresql:
                    driver = conn.driver_connection
                    autocommit = driver.autocommit  # type: ignore[union-attr]
                    driver.autocommit = True  # type: ignore[union-attr]
                    values = [v for row in rows for v in row]
                    if check is None:
                        cursor.execute(self._rows_sql(len(rows)), values)
                    else:
                        cursor.execute(self._checked_sql(len(rows)), [*values, *check])
                        inserted = cursor.rowcount == len(rows)
                    driver.autocommit = autocommit  # type: ignore[union-attr]  # as found
                else:
                    cursor.execute("BEGIN IMMEDIATE")
                    cursor.executemany(self._sql, rows)
                    cursor.execute("COMMIT")
            finally:
                cursor.close()
        except BaseException as exc:
            conn.invalidate(exc if isinstance(exc, Exception) else None)
            raise
        finally:
            if not held:
                conn.close()  # back to the pool (an invalidated one is discarded)
        return inserted

    def _rows_sql(self, n: int) -> str:
        """PostgreSQL: the INSERT of n rows, each value a parameter of its own in psycopg's binary
        format (%b: the bytes go as they are, not as hex text to quote and parse).

        Scalars, not a column's values as arrays (unnest): psycopg dumps a str, bytes or datetime
        in C, an array in Python, after looking through its items for their type each time. The
        SQL of a batch's size is made once (psycopg prepares each after five runs, for the
        connection). PostgreSQL takes 65,535 parameters, 8,191 rows: the gateway's group-commit
        batches hold at most 64 (gateway.writer).
        """
        sql = self._sized.get(n)
        if sql is None:
            sql = self._sql + _values(n)
            if n <= _PG_CACHED:
                self._sized[n] = sql
        return sql

    def _checked_sql(self, n: int) -> str:
        """PostgreSQL: the INSERT of n rows as _rows_sql's, all of them or none: only where the
        facts epoch reads the parameter after the rows' and no messages row has any of the
        (list id, Message-ID) pairs the last two parameters (arrays) give."""
        sql = self._checked.get(n)
        if sql is None:
            names = ", ".join(ROW_COLUMNS)
            sql = (
                f"INSERT INTO {self.table.name} ({names}) SELECT * FROM (VALUES {_values(n)})"
                f" AS v ({names}) WHERE (SELECT epoch FROM {EPOCH_TABLE} WHERE id = 1) = %s"
                " AND NOT EXISTS (SELECT FROM unnest(%s::bigint[], %s::text[]) AS k (l, i)"
                f" JOIN {MESSAGES} m ON m.list_id = k.l AND m.message_id = k.i)"
            )
            if n <= _PG_CACHED:
                self._checked[n] = sql
        return sql

    def _checkout(self, held: PoolProxiedConnection | None = None) -> PoolProxiedConnection:
        """The connection write_rows writes on: the one the caller holds, else one from the
        engine's pool."""
        return self.engine.raw_connection() if held is None else held

    def pending(self, limit: int, after: int = 0, *, budget: int = UNBOUNDED) -> list[Any]:
        """The oldest rows waiting (at most budget bytes, as claim's), read without claiming
        them."""
        with self.reader.connect() as conn:
            return list(conn.execute(self._pending(limit, budget, after)))

    def newest(self) -> int:
        """The id of the last row appended (archived or not; 0 when the spool is empty)."""
        with self.reader.connect() as conn:
            return int(conn.execute(select(func.max(self.table.c.id))).scalar() or 0)

    def claim(self, session: Session, limit: int, budget: int) -> list[Any]:
        """PostgreSQL: the oldest rows waiting, locked for this transaction; other archivers skip
        them.

        The lock is taken on the head of the line (up to limit rows) before the byte cut: the rows
        past the cut stay locked until this transaction ends, passed over by other archivers, and
        are the first of this archiver's next batch (only when large mail cuts a batch short).
        """
        return list(session.connection().execute(self._pending(limit, budget, lock=True)))

    def _pending(self, limit: int, budget: int, after: int = 0, *, lock: bool = False) -> Any:
        """The oldest pending rows, at most limit of them and at most budget bytes of raw mail
        together; the first one whatever its size (it goes alone, never left behind).

        One statement: the head of the line (ids and sizes, locked and skipping locked ones on
        PostgreSQL), cut where its running sum of sizes passes the budget, then those rows' bytes.
        """
        t = self.table
        head = (
            select(t.c.id, func.length(t.c.raw).label("size"))
            .where(t.c.state == SpoolState.PENDING, t.c.id > after)
            .order_by(t.c.id)
            .limit(limit)
        )
        if lock:
            head = head.with_for_update(skip_locked=True)
        line = head.cte("head")
        cut = select(
            line.c.id,
            func.sum(line.c.size).over(order_by=line.c.id).label("through"),
            func.row_number().over(order_by=line.c.id).label("place"),
        ).subquery("cut")
        return (
            select(*(t.c[name] for name in _PENDING_COLUMNS))
            .join_from(t, cut, t.c.id == cut.c.id)
            .where(or_(cut.c.place == 1, cut.c.through <= budget))
            .order_by(t.c.id)
        )

    def mark(self, session: Session) -> int:
        """SQLite: the highest spool id whose archiving committed."""
        return int(
            session.connection()
            .execute(select(MARKS.c.archived_through).where(MARKS.c.generation == self.generation))
            .scalar()
            or 0
        )

    def done(self, session: Session, rows: Sequence[Any], kept: list[dict[str, Any]]) -> None:
        """In the archiving transaction: the rows leave the spool; kept ones (failed) stay, saying
        why."""
        by_id = {row.id: row for row in rows}
        conn = session.connection()
        if not self.separate:
            conn.execute(
                delete(SPOOL).where(
                    SPOOL.c.id.in_([i for i in by_id if i not in {k["pk"] for k in kept}])
                )
            )
            if kept:
                conn.execute(
                    update(SPOOL)
                    .where(SPOOL.c.id == bindparam("pk"))
                    .values(
                        state=bindparam("state"),
                        reason=bindparam("reason"),
                        done_at=bindparam("at"),
                    ),
                    kept,
                )
            return
        if kept:
            conn.execute(insert(SPOOL), [_kept_copy(by_id[k["pk"]], k) for k in kept])
        top = max(by_id)
        if (
            conn.execute(
                update(MARKS)
                .where(MARKS.c.generation == self.generation)
                .values(archived_through=top)
            ).rowcount
            == 0
        ):
            conn.execute(insert(MARKS), {"generation": self.generation, "archived_through": top})

    def clear_through(self, mark: int, *, soon: bool = False) -> None:
        """SQLite: drop the spool file's rows up to the mark (archived already).

        soon: only if the last clear is CLEAR_EVERY seconds old. Each clear takes the spool file's
        write lock (and an fsync), which the listener's appends wait for, behind an archiver of
        lower CPU priority: under load the archived rows go once a second, not every batch
        (they are past the mark, so nothing reads them again meanwhile).
        """
        if not self.separate or mark <= self._cleared:
            return
        now = time.monotonic()
        if (soon and now < self._cleared_at + CLEAR_EVERY) or now < self._retry_at:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(SIDE_SPOOL).where(SIDE_SPOOL.c.id <= mark))
        except Exception:
            self._retry_at = now + CLEAR_EVERY  # a full disk: not again at every idle poll
            raise
        self._cleared, self._cleared_at = mark, time.monotonic()

    def depth(self, session: Session, now: datetime | None = None) -> Depth:
        """Pending messages and the oldest one's age; the rows kept as failed."""
        now = now or datetime.now(UTC)
        after = self.mark(session) if self.separate else 0
        with self.reader.connect() as conn:
            t = self.table
            pending, oldest = conn.execute(
                select(func.count(), func.min(t.c.received_at)).where(
                    t.c.state == SpoolState.PENDING, t.c.id > after
                )
            ).one()
        if isinstance(oldest, str):  # SQLite gives an aggregate's datetime back as text
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        failed = (
            session.scalar(
                select(func.count()).select_from(SPOOL).where(SPOOL.c.state == SpoolState.FAILED)
            )
            or 0
        )
        return Depth(
            int(pending), max(0.0, (now - oldest).total_seconds()) if oldest else 0.0, int(failed)
        )

    def failed(self, session: Session, limit: int = 200) -> list[Any]:
        """The rows kept after archiving raised, oldest first (id, received_at, mail_from, rcpt_tos,
        message_id, reason)."""
        t = SPOOL
        return list(
            session.execute(
                select(
                    t.c.id, t.c.received_at, t.c.mail_from, t.c.rcpt_tos, t.c.message_id, t.c.reason
                )
                .where(t.c.state == SpoolState.FAILED)
                .order_by(t.c.id)
                .limit(limit)
            )
        )

    def retry(self, session: Session, ids: Sequence[int] | None = None) -> int:
        """Put failed rows (these, or all) back in line for the archiver, in the session's
        transaction; how many.

        On SQLite the row moves to the spool file first, then leaves the archive: a crash between
        the two leaves it in both, and archiving it twice finds the first copy (a duplicate).
        """
        where = [SPOOL.c.state == SpoolState.FAILED] + (
            [SPOOL.c.id.in_(list(ids))] if ids is not None else []
        )
        if not self.separate:
            back = (
                update(SPOOL)
                .where(*where)
                .values(state=SpoolState.PENDING, reason="", done_at=None)
            )
            return int(session.connection().execute(back).rowcount)
        rows = list(
            session.execute(
                select(*(SPOOL.c[c] for c in _PENDING_COLUMNS)).where(*where).order_by(SPOOL.c.id)
            )
        )
        if rows:
            pending = SpoolState.PENDING.value
            self.write_rows(
                [
                    (self._when(r.received_at), *(getattr(r, c) for c in _PENDING_COLUMNS[2:]))
                    + (pending, "")
                    for r in rows
                ]
            )
            session.execute(delete(SPOOL).where(SPOOL.c.id.in_([r.id for r in rows])))
        return len(rows)


def _counts_text(counts: Counts) -> str:
    """The counts column: a line "name:label<TAB>n" per counter (its size bounded by the counters,
    not by the events)."""
    return "\n".join(f"{name}:{label}\t{n}" for name, label, n in counts if n > 0)


def counts_of(text: str) -> Counts:
    """The counts a spool row carries (a line "name:label" alone, as written before, is one)."""
    found = []
    for line in filter(None, text.split("\n")):
        key, _, n = line.partition("\t")
        name, _, label = key.partition(":")
        found.append((name, label, int(n) if n.isdigit() else 1))
    return tuple(found)


def _kept_copy(row: Any, kept: dict[str, Any]) -> dict[str, Any]:
    """A spool file's row as the archive keeps it (not posted or failed)."""
    return {
        "received_at": row.received_at,
        "mail_from": row.mail_from,
        "rcpt_tos": row.rcpt_tos,
        "message_id": row.message_id,
        "counts": row.counts,
        "raw": row.raw,
        "state": kept["state"],
        "reason": kept["reason"],
        "done_at": kept["at"],
    }
