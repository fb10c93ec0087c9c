"""An archive fed only by live mail gets the planner's statistics from its long-running processes.

Only `listgate import` ran ANALYZE: a SQLite archive grown by mail through the gateway and the
archiver never had statistics, and its planner guessed. Measured on 5,000 posts archived this way,
an author page's "who answers whom" statements walked the whole list by date (ix_messages_list_date)
instead of probing the author's posts (ix_messages_from_addr): 1.6 and 2.0 ms instead of 0.05 and
0.03 ms, growing with the list. Each pooled connection now runs SQLite's PRAGMA optimize, at most
every statistics.OPTIMIZE_EVERY seconds, when it goes back to the pool, and once as it closes (a
command line's connection never lived that long).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from listgate import statistics
from listgate.archiver import Archiver
from listgate.config import Settings
from tests.support.config import wait_until
from tests.support.gateway import through_hooks
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink
from tests.support.worker import build_site, mail

pytestmark = pytest.mark.integration

AUTHORS = 40


def _mail(n: int) -> bytes:
    """Post n: threads of four, by AUTHORS people."""
    reply = f"In-Reply-To: <p{n - n % 4}@x>\r\nReferences: <p{n - n % 4}@x>\r\n" if n % 4 else ""
    return (
        f"From: User {n % AUTHORS} <u{n % AUTHORS}@example.org>\r\nTo: dev@lists.test\r\n"
        f"Subject: {'Re: ' if n % 4 else ''}Topic {n // 4}\r\nMessage-ID: <p{n}@x>\r\n{reply}"
        f"Date: Mon, 2 Mar 2026 10:{n % 60:02d}:00 +0000\r\n\r\nSome words. {n}\r\n"
    ).encode()


def _archive(handler: GatewayHandler, archiver: Archiver, numbers: range) -> None:
    """Mail numbers through the gateway's hooks (250 each), then archived as the archiver does."""
    for n in numbers:
        sender = f"u{n % AUTHORS}@example.org"
        assert through_hooks(handler, _mail(n), sender, ["dev@lists.test"]).startswith("250")
    assert archiver.drain() == len(numbers)


def _analyzed(path: Path) -> set[str]:
    """The tables sqlite_stat1 has statistics for (none when it does not exist)."""
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'").fetchone():
            return set()
        return {row[0] for row in conn.execute("SELECT DISTINCT tbl FROM sqlite_stat1")}


def _author_page_statements(app: Flask, message_pk: int) -> list[tuple[str, Any]]:
    """The statements the author page of post message_pk runs on messages answering messages."""
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if "JOIN messages AS" in statement and "from_addr" in statement:
            seen.append((statement, params))

    engine = app.extensions["listgate"].engine
    event.listen(engine, "before_cursor_execute", grab)
    try:
        assert app.test_client().get(f"/lists/dev/authors/{message_pk}").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    assert len(seen) == 2, seen  # whom the author answers, who answers the author
    return seen


def _plans(path: Path, statements: list[tuple[str, Any]]) -> list[list[str]]:
    """EXPLAIN QUERY PLAN of each statement on a new connection (which reads sqlite_stat1)."""
    with sqlite3.connect(path) as conn:
        return [
            [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", params)]
            for statement, params in statements
        ]


def test_an_archive_fed_by_mail_gets_statistics_from_its_archiver(
    settings: Settings,
    engine: Engine,
    db: sessionmaker[Session],
    make_list: Any,
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_list("dev")
    path = settings.data_dir / "listgate.sqlite3"
    handler, archiver = GatewayHandler(settings, db), Archiver(settings, db)
    for start in range(0, 240, 40):  # mail keeps coming, batch after batch
        _archive(handler, archiver, range(start, start + 40))
    # within the first interval nothing is analyzed: the planner guesses, and an author page
    # walks every post of the list by date to find the author's
    assert _analyzed(path) == set()
    statements = _author_page_statements(app, 5)
    for plan in _plans(path, statements):
        assert plan[0].endswith("USING INDEX ix_messages_list_date (list_id=?)"), plan
    # an interval later, the archiver's next batch returns its connection to the pool
    monkeypatch.setattr(statistics, "OPTIMIZE_EVERY", 0.0, raising=False)
    _archive(handler, archiver, range(240, 250))
    assert {"messages", "threads", "thread_nodes", "message_refs"} <= _analyzed(path)
    for plan in _plans(path, statements):
        assert any("USING INDEX ix_messages_from_addr (from_addr=?)" in step for step in plan), plan


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`listgate ARGS` in a process of its own on the database of settings."""
    env = {
        **os.environ,
        "LISTGATE_DATA_DIR": str(settings.data_dir),
        "LISTGATE_DOMAIN": settings.domain,
        "LISTGATE_SECRET_KEY": settings.secret_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "listgate.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.long(25)
def test_a_command_line_run_on_an_archive_fed_by_mail_leaves_its_statistics(
    settings: Settings, db: sessionmaker[Session], make_list: Any, app: Flask
) -> None:
    """A connection that lives less than OPTIMIZE_EVERY (here the command line's) runs PRAGMA
    optimize when it closes: before, only pooled connections an hour old ever did."""
    make_list("dev")
    path = settings.data_dir / "listgate.sqlite3"
    handler, archiver = GatewayHandler(settings, db), Archiver(settings, db)
    _archive(handler, archiver, range(240))  # their connections stay open, in their pool
    assert _analyzed(path) == set()
    statements = _author_page_statements(app, 5)
    for plan in _plans(path, statements):
        assert plan[0].endswith("USING INDEX ix_messages_list_date (list_id=?)"), plan
    # a moderator takes a post down from the command line: a few look-ups, then it exits
    done = _cli(settings, "messages", "remove", "p7@x", "--reason", "spam")
    assert done.returncode == 0, done.stderr
    assert "messages" in _analyzed(path)
    for plan in _plans(path, statements):
        assert any("USING INDEX ix_messages_from_addr (from_addr=?)" in step for step in plan), plan


def test_a_worker_process_that_ends_leaves_its_statistics(tmp_path: Path, sink: SmtpSink) -> None:
    """A pool process recycled after its task (--max-tasks-per-child) closes its connections."""
    site = build_site(tmp_path, sink)
    site.subscribe("dev", *(f"r{n}@example.org" for n in range(30)))
    path = site.settings.data_dir / "listgate.sqlite3"
    worker = WorkerProcess(
        site.env, tmp_path / "worker.log", concurrency=1, extra=("--max-tasks-per-child", "1")
    ).start()
    try:
        site.post(mail("carol@example.net", "Hi", "w1@x"))
        wait_until(lambda: len(sink.received) == 30, what="the post's 30 copies")
        # the pool process's connections closed as it ended, before the next one took over
        wait_until(lambda: "subscriptions" in _analyzed(path), what="the fan-out's statistics")
    finally:
        worker.stop()
        site.db.kw["bind"].dispose()
