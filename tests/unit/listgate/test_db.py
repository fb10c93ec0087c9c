"""Which database errors say a connection cannot write (listgate.db drops such connections)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from listgate.db import SQLITE_BUSY_MS, read_only_error, sqlite_cannot_write


def test_a_write_on_a_read_only_sqlite_connection_is_a_read_only_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as info:
        ro.execute("INSERT INTO t VALUES (1)")
    ro.close()
    assert read_only_error(info.value)


def test_other_sqlite_errors_are_not_read_only_errors(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    with pytest.raises(sqlite3.OperationalError) as info:
        conn.execute("INSERT INTO missing VALUES (1)")
    conn.close()
    assert not read_only_error(info.value)
    assert not read_only_error(None)


class PgError(Exception):
    """What psycopg raises: an exception carrying the server's SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_postgres_read_only_transactions_are_recognised_by_their_sqlstate() -> None:
    # read-only transaction: default_transaction_read_only, a standby
    assert read_only_error(PgError("25006"))
    assert not read_only_error(PgError("23505"))  # a unique violation is not


def _database(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    return path


def test_a_new_sqlite_connection_that_can_write_is_told_apart_from_one_that_cannot(
    tmp_path: Path,
) -> None:
    path = _database(tmp_path)
    rw = sqlite3.connect(path, isolation_level=None)
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        assert not sqlite_cannot_write(rw)
        assert sqlite_cannot_write(ro)
        assert rw.execute("PRAGMA busy_timeout").fetchone() == (SQLITE_BUSY_MS,)
        assert not rw.in_transaction and not ro.in_transaction
        rw.execute("INSERT INTO t VALUES (1)")  # the probe left nothing behind
        assert rw.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        rw.close()
        ro.close()


def test_a_connection_waiting_for_another_writer_can_write(tmp_path: Path) -> None:
    path = _database(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    new = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the probe does not wait for it, and says writable
        assert not sqlite_cannot_write(new)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        new.close()


def test_a_bursts_wal_gives_its_room_back_after_a_checkpoint(tmp_path: Path) -> None:
    """A burst grows a database's WAL file far past its usual size; once a checkpoint has copied
    it back and the next write starts the WAL again, the file is cut back (a full disk gets that
    room back)."""
    from sqlalchemy import text

    from listgate.db import WAL_KEPT_BYTES, sqlite_engine

    path = tmp_path / "burst.sqlite3"
    engine = sqlite_engine(f"sqlite:///{path}")
    wal = Path(f"{path}-wal")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (b BLOB)"))
            for _ in range(80):  # 8 MB in one transaction: no checkpoint can cut it short
                conn.execute(text("INSERT INTO t VALUES (:b)"), {"b": b"x" * 100_000})
        assert wal.stat().st_size > 6 * WAL_KEPT_BYTES
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        with engine.begin() as conn:  # this write starts the WAL from its beginning
            conn.execute(text("INSERT INTO t VALUES (x'00')"))
        assert wal.stat().st_size <= WAL_KEPT_BYTES
    finally:
        engine.dispose()


def test_a_page_cache_is_given_only_to_the_engines_that_ask_for_one(tmp_path: Path) -> None:
    """`listgate import` writes with a page cache of its own (a batch's index pages stay in
    memory, not read and written again); every other process keeps SQLite's 2 MB a connection,
    so the web archive's and the workers' connections do not grow."""
    from listgate.db import sqlite_engine

    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    bulk, plain = sqlite_engine(url, cache_kib=32768), sqlite_engine(url)
    try:
        with bulk.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -32768
        with plain.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
    finally:
        bulk.dispose()
        plain.dispose()
