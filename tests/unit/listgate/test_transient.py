"""Which database errors are worth a retry (and a
503), and which fail the same way every time (a 500).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from listgate.db import is_transient


def _error(engine_url: str, statement: str, **connect_args: object) -> DBAPIError:
    engine = create_engine(engine_url, connect_args=connect_args)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statement!r} did not fail")


def test_a_sqlite_lock_timeout_is_transient(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    holder = create_engine(url)
    with holder.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.commit()
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        exc = _error(url, "INSERT INTO t VALUES (1)", timeout=0.1)
        conn.rollback()
    holder.dispose()
    assert "locked" in str(exc) and is_transient(exc)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO t VALUES (1)",  # UNIQUE constraint failed: an integrity error
        "SELECT * FROM no_such_table",  # a programming error SQLite reports as OperationalError
        "SELECT x FROM t WHERE",  # syntax
    ],
)
def test_integrity_and_programming_errors_are_not(tmp_path: Path, statement: str) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    setup = create_engine(url)
    with setup.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    setup.dispose()
    assert not is_transient(_error(url, statement))


def test_an_unreachable_postgresql_is_transient() -> None:
    engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    with pytest.raises(DBAPIError) as caught:
        engine.connect()
    assert is_transient(caught.value)


def test_other_exceptions() -> None:
    assert is_transient(ConnectionResetError()) and not is_transient(ValueError("bad"))
