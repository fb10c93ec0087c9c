"""The planner's statistics: gathered after bulk writes, and kept fresh on SQLite by every process.

A table filled in bulk has no statistics until PostgreSQL's autovacuum gets to it, and SQLite
gathers none by itself. Until then the planners guess, and measured after an import they guessed
wrong: PostgreSQL's generic plan of the gateway's duplicate look-up walked every message of the
list instead of probing its Message-IDs, and SQLite joined a list's activity page's posts to their
threads by scanning the threads once per post (quadratic). So `listgate import` ends by gathering
them (gather, ANALYZE). An archive fed by mail is never imported: on SQLite each pooled connection
of the engine (the archiver's, the gateway's, the web's, a worker's) runs PRAGMA optimize now and
then and as it closes (keep_fresh), which analyzes only the tables its planner used that lack
statistics or grew many times over since; PostgreSQL's autovacuum does that job there.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from listgate import models
from listgate.db import READ_ONLY, SQLITE_BUSY_MS, writer
from listgate.store import table

log = logging.getLogger(__name__)

# What archiving a message writes row by row (listgate.ingest, threads, conversations).
ARCHIVE = (
    models.Message,
    models.RawMessage,
    models.Thread,
    models.ThreadNode,
    models.MessageRef,
    models.ThreadParticipant,
    models.MessageVariant,
    models.Attachment,
    models.Blob,
)
ANNOUNCE = "updating the planner's statistics…"
# How often a pooled SQLite connection runs PRAGMA optimize (SQLite's advice for long-lived
# connections: hourly or daily); with nothing to analyze it costs microseconds.
OPTIMIZE_EVERY = 3600.0
# Rows per index an optimize's ANALYZE reads at most: approximate statistics at a bounded cost
# (SQLite suggests 100 to 1000); the import's ANALYZE reads everything.
ANALYSIS_LIMIT = 1000
RETRY = 60.0  # seconds to the next try of a connection whose PRAGMA optimize failed
_OPTIMIZED = "listgate.optimized"  # connection info key: when it last ran PRAGMA optimize


def gather(engine: Engine, models: Iterable[type[Any]] = ARCHIVE) -> bool:
    """ANALYZE the tables of models, one transaction each; False after a WARNING naming what failed.

    A failure never undoes what was written: the tables keep their old statistics (autovacuum
    gathers PostgreSQL's later), so the caller reports it and carries on.
    """
    names = [table(model).name for model in models]
    quote = engine.dialect.identifier_preparer.quote
    started = time.monotonic()
    for done, name in enumerate(names):
        try:
            with writer(engine).begin() as conn:
                conn.exec_driver_sql(f"ANALYZE {quote(name)}")
        except SQLAlchemyError as exc:
            log.warning(
                "updating the planner's statistics failed: ANALYZE %s: %s (what was written is "
                "kept; not analyzed: %s)",
                name,
                _first_line(exc),
                ", ".join(names[done:]),
            )
            return False
    log.info(
        "gathered the planner's statistics of %d tables in %.1fs",
        len(names),
        time.monotonic() - started,
    )
    return True


def keep_fresh(engine: Engine) -> None:
    """SQLite: each pooled connection runs PRAGMA optimize when back in the pool, at most every
    OPTIMIZE_EVERY seconds of its life, and once more when it is closed.

    SQLite analyzes the tables this connection's planner used whose indexes lack statistics or
    that grew many times over since their last ANALYZE (25 times before SQLite 3.46): the
    connection itself keeps track of which, so it runs on the connections that did the work.
    SQLite advises it before closing a short-lived connection: one that lives less than the
    interval (a pool's overflow, a short worker process, a command line's) never had its turn,
    and its work would be forgotten. With analysis_limit it stays cheap.
    """

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_OPTIMIZED] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_conn: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        now = time.monotonic()
        if dbapi_conn is None or record.info.get(READ_ONLY):
            return
        if now - record.info.get(_OPTIMIZED, now) < OPTIMIZE_EVERY:
            return
        # after a failure (another writer held the lock) the next try comes sooner
        record.info[_OPTIMIZED] = now if optimize(dbapi_conn) else now - OPTIMIZE_EVERY + RETRY

    @event.listens_for(engine, "close")
    def _closed(dbapi_conn: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        if dbapi_conn is not None and not record.info.get(READ_ONLY):
            optimize(dbapi_conn)  # a busy database skips it: the next connection's close tries


def optimize(dbapi_conn: DBAPIConnection) -> bool:
    """PRAGMA optimize on a SQLite connection outside a transaction, never waiting for a writer.

    Busy (another writer holds the lock), read-only or full, it gives up (False): the statistics
    stay as they are until the connection's next turn.
    """
    started = time.monotonic()
    try:
        cur = dbapi_conn.cursor()
    except sqlite3.Error:
        return False  # closed meanwhile: nothing to refresh through it
    try:
        cur.execute("PRAGMA busy_timeout=0")
        cur.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        cur.execute("PRAGMA optimize")
    except sqlite3.Error as exc:
        log.info("the planner's statistics were not refreshed now (%s); next try later", exc)
        return False
    else:
        log.debug("PRAGMA optimize took %.1f ms", (time.monotonic() - started) * 1000)
        return True
    finally:
        with suppress(sqlite3.Error):  # a connection that cannot take these is broken anyway
            cur.execute("PRAGMA analysis_limit=0")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cur.close()


def _first_line(exc: BaseException) -> str:
    """The database driver's own message, first line (not SQLAlchemy's wrapping)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
