"""The statistics after `listgate import`: gathered and announced; a failure only warns. The
periodic PRAGMA optimize never waits for another writer."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from listgate.cli import main
from listgate.config import Settings
from listgate.db import SQLITE_BUSY_MS, make_engine, session_factory
from listgate.models import Message
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
    """(posts archived, tables with statistics)."""
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            count = session.scalar(select(func.count()).select_from(Message)) or 0
            has_stats = session.scalar(
                text("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'")
            )
            tables = (
                set(session.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1")))
                if has_stats
                else set()
            )
        return count, tables
    finally:
        engine.dispose()


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
    assert _archive(settings) == (POSTS, set())


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
