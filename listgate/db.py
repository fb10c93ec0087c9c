"""Database engine and sessions; nothing is created at import time."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Connection, Engine, MetaData, create_engine, event
from sqlalchemy.engine import CursorResult, Dialect, ExceptionContext, ExecutionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, Pool

from listgate.config import Settings

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every listgate model."""

    metadata = MetaData(naming_convention=NAMING)


def make_engine(
    settings: Settings, *, sqlite_cache_kib: int | None = None, **kwargs: Any
) -> Engine:
    """Create the engine for settings.database_url (SQLite gets WAL and a busy timeout).

    sqlite_cache_kib: each SQLite connection's page cache, when SQLite's default (2 MB) is too
    small for the work (PostgreSQL's cache is the server's: ignored there)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        from listgate import statistics  # it needs the models, which need this module

        engine = sqlite_engine(url, cache_kib=sqlite_cache_kib, **kwargs)
        statistics.keep_fresh(engine)  # PostgreSQL's autovacuum does it there
        return engine
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return _postgres_engine(url, **kwargs)


def _postgres_engine(url: str | URL, **kwargs: Any) -> Engine:
    engine = create_engine(url, **kwargs)
    _ping_after_idle(engine)
    _drop_read_only(engine, _postgres_read_only, recheck=True)
    return engine


PING_AFTER_IDLE = 1.0  # seconds a pooled PostgreSQL connection sits unused before a ping at reuse
_LAST_USED = "listgate.last_used"  # connection info key: when it was last returned to the pool


def _ping_after_idle(engine: Engine) -> None:
    """Ping the server before reusing a pooled connection that sat unused a while.

    SQLAlchemy's pool_pre_ping pings before every use: a round trip per checkout, two per
    group-commit batch of the gateway. A server restarted, or a connection cut, while the
    connection sat idle is found here and the connection replaced, unseen by the caller. A
    connection in steady use is handed out as it is: if the server went away meanwhile, the
    statement fails as a disconnect, SQLAlchemy discards the pool's connections, and the next
    try gets a new one (the gateway answers that batch 451).
    """

    @event.listens_for(engine, "connect")
    def _new(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _used(_dbapi_conn: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ask(dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object) -> None:
        if time.monotonic() - record.info.get(_LAST_USED, 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # a ping fails only on a connection gone bad
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def sqlite_engine(
    url: str, synchronous: str = "NORMAL", cache_kib: int | None = None, **kwargs: object
) -> Engine:
    """A SQLite engine: WAL, a busy timeout, foreign keys, and no connection unable to write pooled.

    synchronous=FULL for a file whose every commit must survive a power loss (the gateway's spool).
    cache_kib: each connection's page cache in KiB (None: SQLite's default, 2 MB).
    """
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
    _sqlite_pragmas(engine, synchronous, cache_kib)
    _drop_read_only(engine, sqlite_cannot_write, recheck=False)
    _sqlite_never_read_only(engine, path)
    return engine


READ_ONLY = "listgate.read_only"  # connection info key: the connection cannot write
SQLITE_READONLY = 8  # the primary result code of every SQLITE_READONLY_* error
SQLITE_BUSY_MS = 30000  # how long a SQLite statement waits for another writer's lock
# default_transaction_read_only, a hot standby, a fenced primary
PG_READ_ONLY_SQL_TRANSACTION = "25006"


def read_only_error(exc: BaseException | None) -> bool:
    """True for a DBAPI error saying this connection cannot write (retrying on it will not help)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == SQLITE_READONLY
    return getattr(exc, "sqlstate", None) == PG_READ_ONLY_SQL_TRANSACTION


def _drop_read_only(engine: Engine, cannot_write: Callable[[Any], bool], recheck: bool) -> None:
    """Never pool a connection that cannot write, so a read-only period ends with the database's.

    A SQLite connection opened while its files were read-only, or a PostgreSQL session started
    read-only (default_transaction_read_only, a standby), stays so for its whole life: one kept in
    the pool would refuse writes long after the database is writable again. Such a connection is
    closed when it is checked in (`recheck`: also one that turned read-only since), and an error
    saying a connection cannot write makes SQLAlchemy discard it and every older pooled connection.
    """

    @event.listens_for(engine, "connect")
    def _flag(dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[READ_ONLY] = cannot_write(dbapi_conn)

    @event.listens_for(engine, "checkin")
    def _close(dbapi_conn: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        if dbapi_conn is not None and (
            record.info.get(READ_ONLY) or (recheck and cannot_write(dbapi_conn))
        ):
            record.invalidate()

    @event.listens_for(engine, "handle_error")
    def _discard(context: ExceptionContext) -> None:
        if read_only_error(context.original_exception):
            context.is_disconnect = True
            _close_cursor(context.execution_context)


def _close_cursor(context: ExecutionContext | None) -> None:
    """Close the cursor of a statement that failed on a connection about to be discarded.

    SQLAlchemy leaves it open when it discards the connection, and the traceback keeps it alive
    until the garbage collector runs: its SQLite statement, never finalized, keeps the closed
    connection open underneath, and with it the read-only WAL index that every connection this
    process opens to the file shares, so writes fail for minutes after the files are writable.
    """
    cursor = getattr(context, "cursor", None)
    if cursor is not None:
        with suppress(Exception):  # a cursor of a broken connection may refuse even this
            cursor.close()


def sqlite_cannot_write(dbapi_conn: Any) -> bool:
    """True when a new SQLite connection cannot write: it tries one, rolled back, without waiting.

    Its own file opened read-only, or the WAL index (-shm) it shares with the process's other
    connections to the file opened so while the files were read-only: file modes cannot tell,
    and BEGIN IMMEDIATE alone succeeds on a read-only file. Busy (another writer holds the lock)
    means it can write.
    """
    version = int(dbapi_conn.execute("PRAGMA user_version").fetchone()[0])
    try:
        dbapi_conn.execute("PRAGMA busy_timeout=0")
        dbapi_conn.execute("BEGIN IMMEDIATE")
        try:
            dbapi_conn.execute(f"PRAGMA user_version={version}")  # the same value, and rolled back
        finally:
            dbapi_conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return read_only_error(exc)
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    return False


def _sqlite_never_read_only(engine: Engine, path: str) -> None:
    """Open an existing database file, never create one; keep a writable WAL index once made.

    mode=rw, once the file was seen writable: a deleted file is not silently made again empty.
    (SQLite still opens a write-protected file read-only; such connections are never pooled.)
    The anchor: SQLite shares one WAL index (-shm) per file among the connections of a process,
    made by whichever connection finds none; made while the files are read-only it stays
    read-only while any connection shares it. The first time a connection can write, an idle
    connection opened beside it keeps that writable index for the engine's life (closed when the
    engine is disposed), so connections opened during a later read-only period share it.
    """
    if not path or path == ":memory:":
        return
    uri = f"file:{quote(os.path.abspath(path))}?mode=rw"
    seen_writable = [os.path.exists(path) and os.access(path, os.W_OK)]
    anchor: list[sqlite3.Connection] = []
    lock = threading.Lock()

    @event.listens_for(engine, "do_connect")
    def _rw(_dialect: Dialect, _record: object, cargs: list[Any], cparams: dict[str, Any]) -> None:
        if seen_writable[0] or (os.path.exists(path) and os.access(path, os.W_OK)):
            seen_writable[0] = True
            cargs[:] = [uri]
            cparams["uri"] = True

    @event.listens_for(engine, "connect")
    def _keep(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        if anchor or record.info.get(READ_ONLY):
            return
        with lock:
            if not anchor:
                anchor.extend(_open_anchor(uri, path))

    @event.listens_for(engine, "engine_disposed")
    def _close(_engine: Engine) -> None:
        with lock:
            while anchor:
                anchor.pop().close()


def _open_anchor(uri: str, path: str) -> list[sqlite3.Connection]:
    """An idle connection that maps the file's WAL index, or none when it cannot be opened."""
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # maps the WAL index
    except sqlite3.Error as exc:
        log.warning("could not keep a connection open to %s: %s", path, exc)
        return []
    return [conn]


def _postgres_read_only(dbapi_conn: Any) -> bool:
    """True when a psycopg session is read-only now (PostgreSQL 14+ reports both settings)."""
    status = getattr(getattr(dbapi_conn, "info", None), "parameter_status", None)
    if status is None:
        return False
    return "on" in (status("default_transaction_read_only"), status("in_hot_standby"))


# After a checkpoint that empties it, the WAL file is cut back to this size: a burst's WAL (on a
# full disk, several MB per database file) would otherwise keep its room for good.
WAL_KEPT_BYTES = 1024 * 1024
_SYNCHRONOUS = "listgate.synchronous"  # connection info key: the safety level set on it
NO_BEGIN = "none"  # sqlite_begin for look_ups(): no BEGIN, each statement a transaction of its own


def _sqlite_pragmas(
    engine: Engine, synchronous: str = "NORMAL", cache_kib: int | None = None
) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE for writers so read-then-write never deadlocks."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        if cache_kib is not None:
            cur.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # negative: KiB, not pages
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        level = options.get("sqlite_synchronous", synchronous)
        info = conn.connection.info
        # set before BEGIN: SQLite refuses to change the safety level inside a transaction
        if info.get(_SYNCHRONOUS, synchronous) != level:
            conn.exec_driver_sql(f"PRAGMA synchronous={level}")
            info[_SYNCHRONOUS] = level
        mode = options.get("sqlite_begin", "")
        if mode != NO_BEGIN:
            conn.exec_driver_sql(f"BEGIN {mode}".strip())


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions take the write lock up front on SQLite."""
    from listgate import store  # it needs the models, which need this module

    if store.of(engine).sqlite:
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


def durable(engine: Engine) -> Engine:
    """The same engine, but on SQLite each commit is on disk before it returns (synchronous=FULL).

    For a transaction whose loss in a power failure would lose what another file forgot meanwhile:
    the archiver's, which moves the spool's mark (the spool file then drops the rows up to it).
    PostgreSQL commits are durable already.
    """
    from listgate import store

    if store.of(engine).sqlite:
        return engine.execution_options(sqlite_synchronous="FULL")
    return engine


# PostgreSQL: the look-ups' connections plan a prepared statement once, for any values
GENERIC_PLANS = "-c plan_cache_mode=force_generic_plan"
_LOOK_UPS: weakref.WeakKeyDictionary[Pool, Engine] = weakref.WeakKeyDictionary()
_LOOK_UPS_LOCK = threading.Lock()


def look_ups(engine: Engine) -> Engine:
    """An engine for read-only look-ups that need no common snapshot (the gateway's RCPT and
    DATA), and for what the gateway appends to the spool on the same connection.

    Each statement is a transaction of its own: no BEGIN and ROLLBACK around them (on PostgreSQL
    two round trips; at READ COMMITTED each statement takes its own snapshot in a transaction
    too). Nothing written through it may depend on a rollback.

    On PostgreSQL it is an engine of its own on the same database (one per engine, disposed
    with it): its connections run in autocommit, and plan each prepared statement once
    (plan_cache_mode=force_generic_plan) instead of again at every run. The gateway's per-batch
    statements (the lists with their facts, the spool's INSERT) are prepared by psycopg
    after five runs, and the server otherwise keeps planning them for their values (with
    arrays for parameters their one-time plans estimate higher): that planning was most of the
    server's CPU per batch. Their plans probe the same indexes whatever the values
    (tests/integration/test_import_statistics.py checks the look-up's). Only the look-ups'
    pool is set so; the archive's statements keep PostgreSQL's choice.
    """
    from listgate import store

    if store.of(engine).postgresql:
        return _postgres_look_ups(engine)
    # SQLAlchemy's AUTOCOMMIT would reset the sqlite3 connection's transaction mode on its return
    # to the pool; the connection already runs each statement alone until our BEGIN (above)
    return engine.execution_options(sqlite_begin=NO_BEGIN)


def _postgres_look_ups(engine: Engine) -> Engine:
    """The look-ups' engine of a PostgreSQL engine (itself when it is one), made once."""
    if engine.get_execution_options().get(_LOOK_UP_ENGINE):
        return engine
    with _LOOK_UPS_LOCK:  # by the engine's pool: an engine and its execution_options() share it
        found = _LOOK_UPS.get(engine.pool)
        if found is not None:
            return found
        made = _LOOK_UPS[engine.pool] = _postgres_engine(
            engine.url,
            connect_args={"options": GENERIC_PLANS},
            isolation_level="AUTOCOMMIT",
            execution_options={_LOOK_UP_ENGINE: True},
        )
        event.listen(made, "connect", _compress_with_lz4)

    @event.listens_for(engine, "engine_disposed")
    def _dispose(disposed: Engine) -> None:  # its connections go with the engine's
        made.dispose()
        with _LOOK_UPS_LOCK:  # dispose() gives an engine a new pool
            _LOOK_UPS[disposed.pool] = made

    return made


_LOOK_UP_ENGINE = "listgate_look_ups"  # execution option: this engine is a look-ups' engine
LZ4 = "SET default_toast_compression = lz4"


def _compress_with_lz4(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """A new look-ups' connection compresses what it writes with lz4, where the server has it.

    Its writes are the spool's rows, each post's bytes over PostgreSQL's 2 KB TOAST threshold:
    with the default (pglz) the server spends about a third of an INSERT's CPU compressing them
    (a 4 KB post: 150 -> 110 us a row; mail that does not compress, 130 -> 80), for rows the
    archiver deletes a moment later. Set on the new connection, which runs in autocommit
    already (its isolation level is set first): a server built without lz4 refuses the SET
    alone and keeps pglz.
    """
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(LZ4)
    except Exception as exc:  # noqa: BLE001 - the server's default compression stays
        log.info("the look-ups' connections keep the server's TOAST compression: %s", exc)
    finally:
        cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to engine; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


# SQLite primary result codes worth retrying: busy, locked, out of memory, read-only, I/O, full,
# can't open.
_SQLITE_TRANSIENT = {5, 6, 7, 8, 10, 13, 14}
# PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock, lock timeout, statement
# timeout, shutdown / cannot connect now, read-only transaction (a failover); classes 08
# (connection) and 53 (resources).
_PG_TRANSIENT = {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "25006"}


def is_transient(exc: BaseException) -> bool:
    """True for a database or network error that a retry may get past (a lost connection...).

    False for an integrity or programming error, which will fail the same way every time.
    """
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, (PoolTimeout, OSError)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_TRANSIENT
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return state in _PG_TRANSIENT or state[:2] in ("08", "53")
    # A driver error with no code: psycopg's own connection failures are OperationalError.
    return isinstance(exc, OperationalError)


def rowcount(result: object) -> int:
    """The rows an UPDATE or DELETE matched (Session.execute types its result as a plain Result)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {type(result).__name__}")
    return result.rowcount
