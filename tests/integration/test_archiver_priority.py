"""The archiver stage, as its own process, runs below the listener's CPU priority.

Under a burst the listener's 250s come first and the spool grows; the archiver drains it on the
CPU the listener leaves (LISTGATE_ARCHIVER_NICE, default 10). The listener keeps its priority.
"""

from __future__ import annotations

import os
import smtplib
from pathlib import Path

import pytest

from tests.support.config import prepare, site_env
from tests.support.gateway import archived_ids
from tests.support.processes import Service, archiver, gateway

pytestmark = pytest.mark.integration


def _nice(pid: int) -> set[int]:
    """The nice value of every thread of a process (Linux: priority is per thread)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        # the fields after the command's closing parenthesis; nice is field 19 of the line
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        found.add(int(fields[16]))
    return found


def _post(port: int, n: int) -> None:
    raw = (
        f"From: Ann <ann@example.org>\r\nTo: dev@lists.test\r\nSubject: burst {n}\r\n"
        f"Message-ID: <prio-{n}@example.org>\r\n\r\nhello {n}\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("ann@example.org", ["dev@lists.test"], raw)


def _run(tmp_path: Path, **extra: str) -> tuple[set[int], set[int], list[str]]:
    """(listener's thread nice values, archiver's, Message-IDs archived) after three posts."""
    env = site_env(tmp_path, **extra)
    settings, db = prepare(env, "dev")
    listener = gateway(env, tmp_path / "gateway.log")
    listener.args = ["--no-archiver"]
    apart: Service = archiver(env, tmp_path / "archiver.log")
    try:
        listener.start()
        apart.start()
        for n in range(3):
            _post(settings.smtp_port, n)
        archived = sorted(archived_ids(db))
        assert listener.proc is not None and apart.proc is not None
        return _nice(listener.proc.pid), _nice(apart.proc.pid), archived
    finally:
        listener.stop()
        apart.stop()


def test_the_archiver_process_yields_the_cpu_to_the_listener(tmp_path: Path) -> None:
    own = os.nice(0)
    listener, archiving, archived = _run(tmp_path)
    assert listener == {own}, "the listener must keep the priority it was started with"
    # every thread of the archiver, the broker sender's too: they are started after the change
    assert archiving == {min(19, own + 10)}
    assert archived == [f"prio-{n}@example.org" for n in range(3)]
    assert (
        "CPU priority lowered by 10 (LISTGATE_ARCHIVER_NICE)"
        in (tmp_path / "archiver.log").read_text()
    )  # in its "ready" line (at INFO when no supervisor listens for it)


def test_archiver_nice_zero_keeps_the_listeners_priority(tmp_path: Path) -> None:
    own = os.nice(0)
    listener, archiving, archived = _run(tmp_path, LISTGATE_ARCHIVER_NICE="0")
    assert listener == archiving == {own}
    assert len(archived) == 3
