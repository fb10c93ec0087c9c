"""The archiver stage, as its own process, runs below the listener's CPU priority.

Under a burst the listener's 250s come first and the spool grows; the archiver drains it on the
CPU the listener leaves (LISTGATE_ARCHIVER_NICE, default 10). The listener keeps its priority.

Started in a session of its own (`listgate up`, the compose file, these tests), each process is
also a scheduling group of its own where the kernel groups by session (autogroup): a thread's
nice value then counts only against the threads of its own session, and the archiver's weight
against the listener is that of its session's group (/proc/PID/autogroup).
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.__main__ import session_group_nice
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
    """(listener's thread nice values, archiver's, Message-IDs archived) after three posts;
    checks the session groups' nice values before the processes stop."""
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
        if session_group_nice() is not None:  # each in a session of its own (Service)
            assert session_group_nice(listener.proc.pid) == 0, (
                "the listener's group keeps its weight"
            )
            # three posts: the archiver keeps up, its group keeps its weight (see _yield_in)
            assert session_group_nice(apart.proc.pid) == 0
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


def _yield_in(own_session: bool) -> tuple[int, list[int | None], int | None]:
    """In a process that yields as the archiver does: its threads' nice value, and its session
    group's at the start, while the spool outgrows it, and after; this test's group's after."""
    code = (
        "import os; from gateway.__main__ import _yield_cpu; "
        "from gateway.__main__ import session_group_nice\n"
        "pace = _yield_cpu(10); seen = [session_group_nice()]\n"
        "for outgrown in (True, True, False):\n"
        "    pace and pace(outgrown); seen.append(session_group_nice())\n"
        "print(os.nice(0), *seen)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=own_session,
    )
    thread, *groups = done.stdout.split()
    return int(thread), [None if g == "None" else int(g) for g in groups], session_group_nice()


def test_the_archivers_session_group_yields_while_the_spool_outgrows_it() -> None:
    """Lowered only under a burst (arrivals faster than archiving); only a session of its own."""
    own, mine = os.nice(0), session_group_nice()
    lowered = min(19, own + 10)
    thread, groups, after = _yield_in(own_session=True)
    assert (thread, after) == (lowered, mine)
    # A session of its own may be a group of its own even where this test's group cannot be read
    # (a CI runner in a CPU cgroup of its own prints an empty /proc/self/autogroup, while a new
    # session there gets a group): what the new session's process read at its start decides.
    if groups[0] is None:  # no group: the threads' nice values alone rank the processes
        assert groups == [None] * 4
    else:
        assert groups == [0, 10, 10, 0]
    # sharing a session (started from a shell by hand, or by a test): its group is others' too,
    # and stays as it was (the threads' nice values still rank it below the listener's)
    assert _yield_in(own_session=False) == (lowered, [mine] * 4, mine)
