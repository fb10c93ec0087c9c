"""bench.gateway_profile's CPU per thread and per process (Linux /proc): a busy thread's time is
counted under its own name; another process's (the archiver's, the server's) by its number."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from bench.gateway_profile import _cpu_of, _thread_cpu, _without_look_ups
from gateway import answers
from listgate.addresses import parse_recipient
from listgate.admission import STORED, Ask
from listgate.mail.parser import parse_head
from tests.support.factories import MakeList


def test_a_busy_thread_is_counted_under_its_name_without_its_number() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    before = _thread_cpu()
    worker = threading.Thread(target=spin, name="store-7", daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while _thread_cpu().get("store", 0.0) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        spent = _thread_cpu()
    finally:
        stop.set()
        worker.join(10)
    assert "store" not in before
    assert spent["store"] >= 0.05  # five kernel ticks of its own
    assert "store-7" not in spent


def test_another_process_is_counted_while_it_runs_and_an_ended_one_is_skipped() -> None:
    busy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 30\nwhile time.process_time() < end: pass",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while _cpu_of([busy.pid]) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cpu_of([busy.pid]) >= 0.05  # five kernel ticks of its own
    finally:
        busy.kill()
        busy.wait()
    assert _cpu_of([busy.pid]) == 0.0  # gone: nothing to count, no error


def test_without_look_ups_reads_the_lists_once_and_answers_as_the_look_ups_would(
    db: sessionmaker[Session], make_list: MakeList, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The experiment's decision (--without-look-ups) for the tool's own posts (one sender, an
    open list, new Message-IDs): the real one's answers, with no statement after the first batch."""
    make_list("bench")
    engine = db.kw["bind"]
    monkeypatch.setattr(answers, "admit_all", answers.admit_all)  # put back after the test
    real = answers.admit_all
    _without_look_ups()
    counted: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            counted.append(statement)

    def asks(batch: int) -> list[Ask]:
        return [
            Ask(parse_head(raw), raw, "poster@example.org", (recipient,))
            for i in range(3)
            for raw in [
                f"From: poster@example.org\r\nMessage-ID: <{batch}-{i}@x>\r\n\r\nhi\r\n".encode()
            ]
            for recipient in [parse_recipient("bench@lists.test", "lists.test")]
            if recipient is not None
        ]

    event.listen(engine, "before_cursor_execute", count)
    try:
        statements, decided = [], []
        for batch in range(3):
            counted.clear()
            with engine.connect() as conn:
                decided.append(answers.admit_all(conn, asks(batch), domain="lists.test"))
            statements.append(len(counted))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with engine.connect() as conn:
        expected = real(conn, asks(2), domain="lists.test")
    assert statements == [1, 0, 0]

    def statuses(found: list[dict[Any, Any]]) -> list[list[str | None]]:
        return [[None if r is None else r.status for r in d.values()] for d in found]

    assert statuses(decided[2]) == statuses(expected) == [[STORED]] * 3
