"""The statistics after `listgate import`: gathered and announced; a failure only warns. The
periodic PRAGMA optimize never waits for another writer."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from listgate.cli import main
from listgate.config import Settings
from listgate.db import SQLITE_BUSY_MS, make_engine
from listgate.statistics import ANNOUNCE, optimize
from tests.support.factories import make_mail, post

POSTS = 4


@pytest.fixture
def runner(settings: Settings, make_list: Any) -> CliRunner:
    """`listgate` on the test's SQLite archive, which has a list dev."""
    make_list("dev")
    return CliRunner(
        env={
            "LISTGATE_DATA_DIR": str(settings.data_dir),
            "LISTGATE_DOMAIN": settings.domain,
            "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
        }
    )


@pytest.fixture
def mbox(tmp_path: Path) -> Path:
    """An mbox of POSTS posts."""
    path = tmp_path / "posts.mbox"
    path.write_bytes(
        b"".join(
            f"From x@y Mon Mar  2 10:00:00 2026\nFrom: u@example.org\nSubject: {i}\n"
            f"Message-ID: <s{i}@x>\nDate: Mon, 2 Mar 2026 10:0{i}:00 +0000\n\nhi\n\n".encode()
            for i in range(POSTS)
        )
    )
    return path


@pytest.fixture
def analyze_fails() -> Iterator[None]:
    """Every ANALYZE fails as a locked SQLite database fails it."""

    def fail(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("ANALYZE"):
            raise sqlite3.OperationalError("database is locked")

    event.listen(Engine, "before_cursor_execute", fail)
    yield
    event.remove(Engine, "before_cursor_execute", fail)


def _archive(settings: Settings) -> tuple[int, set[str]]:
    """(posts archived, tables with statistics), read on a connection of no engine of ours (whose
    closing PRAGMA optimize would gather statistics of its own)."""
    with closing(sqlite3.connect(settings.data_dir / "listgate.sqlite3")) as conn:
        count = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        if not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'").fetchall():
            return count, set()
        return count, {row[0] for row in conn.execute("SELECT DISTINCT tbl FROM sqlite_stat1")}


def test_an_import_gathers_the_statistics_and_says_so(
    runner: CliRunner, settings: Settings, mbox: Path
) -> None:
    done = runner.invoke(main, ["import", str(mbox), "--list", "dev"])
    assert done.exit_code == 0, done.output
    assert ANNOUNCE in done.stderr
    count, analyzed = _archive(settings)
    assert count == POSTS
    assert {"messages", "raw_messages", "threads", "thread_nodes"} <= analyzed
    quiet = runner.invoke(main, ["import", str(mbox), "--list", "dev", "--quiet"])
    assert quiet.exit_code == 0 and ANNOUNCE not in quiet.output, quiet.output


@pytest.mark.usefixtures("analyze_fails")
def test_a_failing_analyze_is_a_warning_and_the_import_stands(
    runner: CliRunner, settings: Settings, mbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    done = runner.invoke(main, ["import", str(mbox), "--list", "dev"])
    assert done.exit_code == 0, done.output
    assert f"imported:   {POSTS}" in done.stdout
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    said = warning.getMessage()
    assert "ANALYZE messages: database is locked" in said and "not analyzed: messages" in said
    # the import's connection still leaves approximate statistics of what it used, as it closes
    count, analyzed = _archive(settings)
    assert count == POSTS and "messages" in analyzed


def test_optimize_gives_way_to_a_writer_and_leaves_the_connection_as_it_was(
    settings: Settings,
    engine: Engine,
    db: sessionmaker[Session],
    make_list: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_list("dev")
    for n in range(POSTS):
        post(db, make_mail(f"Post {n}"))
    path = settings.data_dir / "listgate.sqlite3"
    pooled = engine.raw_connection()
    try:
        raw, dbapi = pooled.driver_connection, pooled.dbapi_connection  # pysqlite: the same object
        assert isinstance(raw, sqlite3.Connection) and dbapi is not None
        # the planner uses the messages table's indexes on this connection
        raw.execute("SELECT id FROM messages WHERE message_id = 'x' AND list_id = 1").fetchall()
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock...
        releases = threading.Timer(1.0, other.rollback)  # ...and lets go a second later
        releases.start()
        with caplog.at_level(logging.INFO, logger="listgate.statistics"):
            optimize(dbapi)
        releases.join()
        other.close()
        # it did not wait for the lock (it would have got it a second later) and said so
        assert "not refreshed now (database is locked)" in caplog.text
        assert _archive(settings) == (POSTS, set())
        assert raw.execute("PRAGMA busy_timeout").fetchone() == (SQLITE_BUSY_MS,)
        assert raw.execute("PRAGMA analysis_limit").fetchone() == (0,)
        optimize(dbapi)  # its next turn, with nobody writing
        assert "messages" in _archive(settings)[1]
    finally:
        pooled.close()


def test_a_pools_overflow_connection_leaves_its_statistics_when_it_is_closed(
    settings: Settings, db: sessionmaker[Session], make_list: Any
) -> None:
    """Closed on its return (the pool is full), it never lived OPTIMIZE_EVERY: before, nothing."""
    make_list("dev")
    for n in range(20):
        post(db, make_mail(f"Post {n}", msgid=f"o{n}@x", sender=f"u{n % 5}@example.org"))
    path = settings.data_dir / "listgate.sqlite3"
    engine = make_engine(settings, pool_size=1, max_overflow=1)
    by = text("SELECT id FROM messages WHERE from_addr = :a AND list_id = :l")
    try:
        pooled, overflow = engine.connect(), engine.connect()
        for conn in (pooled, overflow):
            assert len(conn.execute(by, {"a": "u1@example.org", "l": 1}).all()) == 4
        pooled.close()  # back in the pool, for the next
        with sqlite3.connect(path) as reader:
            assert not reader.execute(
                "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'"
            ).fetchall()
        overflow.close()  # the pool is full: closed
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT DISTINCT tbl FROM sqlite_stat1").fetchall() == [
                ("messages",)
            ]
    finally:
        engine.dispose()
