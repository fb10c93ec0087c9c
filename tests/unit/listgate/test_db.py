"""Which database errors say a connection cannot write (listgate.db drops such connections)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from listgate.db import read_only_error


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
    assert read_only_error(
        PgError("25006")
    )  # read-only transaction: default_transaction_read_only, a standby
    assert not read_only_error(PgError("23505"))  # a unique violation is not
