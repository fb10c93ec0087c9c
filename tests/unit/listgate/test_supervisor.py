"""What `listgate up` leaves on disk: a supervisor killed outright leaves nothing that piles up,
and supervisors running side by side (two sites, or one site twice) keep their own children's
readiness apart.

`up` runs as a real subprocess with stand-in services (as in test_cli); TMPDIR points at the
test's own directory so that what is left in it is this test's alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from listgate.supervisor import Service, Supervisor
from tests.unit.listgate.test_cli import alive, notifier, pids, start_up, wait_until


def until_up(proc: subprocess.Popen[str]) -> list[str]:
    """Read `up`'s output until it says it is up; the lines read."""
    assert proc.stdout is not None
    lines: list[str] = []
    while not any("listgate is up" in line for line in lines):
        line = proc.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    return lines


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM `up` and collect the rest of its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def left_behind(tmp: Path, run: Path) -> list[str]:
    """The readiness sockets (and their directories) on disk, in TMPDIR and in the site's run/."""
    return sorted(
        [p.name for p in tmp.glob("listgate-up-*")] + [p.name for p in run.glob("notify*")]
    )


def test_up_killed_outright_leaves_nothing_that_piles_up(tmp_path: Path) -> None:
    tmp, run = tmp_path / "tmp", tmp_path / "var" / "run"
    tmp.mkdir()
    a = tmp_path / "a.pid"
    for _ in range(3):
        a.unlink(missing_ok=True)
        proc = start_up(tmp_path, {"gateway": notifier(a)}, TMPDIR=str(tmp))
        until_up(proc)
        (child,) = pids(a)
        proc.kill()  # SIGKILL: no chance to clean up
        proc.communicate(timeout=30)
        assert wait_until(lambda pid=child: not alive(pid), timeout=10), "an orphan kept running"
    # Three supervisors killed: at most the last one's socket waits for the next start.
    assert len(left_behind(tmp, run)) <= 1, left_behind(tmp, run)
    proc = start_up(tmp_path, {"gateway": notifier(a)}, TMPDIR=str(tmp))
    try:
        until_up(proc)
        assert len(left_behind(tmp, run)) == 1, left_behind(tmp, run)  # its own, nothing stale
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert left_behind(tmp, run) == []


def test_two_ups_of_one_site_each_hear_their_own_restarted_child(tmp_path: Path) -> None:
    """A second `up` on the same data dir (other ports) must not take the first one's socket."""
    tmp = tmp_path / "tmp"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    for d in (tmp, first_dir, second_dir):
        d.mkdir()
    site = {"LISTGATE_DATA_DIR": str(tmp_path / "var"), "TMPDIR": str(tmp)}
    a, b = first_dir / "a.pid", second_dir / "b.pid"
    first = start_up(first_dir, {"gateway": notifier(a)}, **site)
    second = None
    try:
        until_up(first)
        second = start_up(second_dir, {"gateway": notifier(b)}, **site)
        until_up(second)
        (child,) = pids(a)
        a.unlink()
        os.kill(child, signal.SIGKILL)
        (again,) = pids(a)
    finally:
        out_first = stop(first)
        out_second = stop(second) if second is not None else ""
    assert f"gateway is serving again (pid {again})" in out_first, out_first
    assert first.returncode == 0 and second is not None and second.returncode == 0, out_second
    assert left_behind(tmp, tmp_path / "var" / "run") == []


def test_a_data_dir_too_deep_for_a_socket_still_supervises_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unix socket path holds107 bytes: deeper data dirs gets a temporary one, removed at stop."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    run = tmp_path / ("deep" * 30) / "run"
    a = tmp_path / "a.pid"
    sup = Supervisor(
        [Service("gateway", tuple(notifier(a)))], echo=print, state_path=run / "up.json"
    )
    try:
        assert sup.notify_path.parent.parent == tmp
        sup.start()
        pids(a)
        for _ in range(100):  # what watch() does: read READY=1 from the temporary socket
            sup._receive(0.1)
            if sup.children["gateway"].ready:
                break
        assert sup.children["gateway"].ready, "the child's READY=1 did not arrive"
    finally:
        sup.stop_all(grace=5)
    assert left_behind(tmp, run) == []
