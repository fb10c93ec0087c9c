"""What `listgate up` leaves on disk: a supervisor killed outright leaves nothing that piles up,
a second `up` of one site refuses to start while the first runs on untouched, and supervisors of
two sites run side by side, each hearing its own children.

`up` runs as a real subprocess with stand-in services (as in test_cli); TMPDIR points at the
test's own directory so that what is left in it is this test's alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from listgate.supervisor import Service, Supervisor, read_state, state_file
from tests.support.config import free_port
from tests.unit.listgate.test_cli import (
    NOTIFIER,
    alive,
    notifier,
    pids,
    start_up,
    status_of,
    wait_until,
)


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

        def gone(pid: int = child) -> bool:
            return not alive(pid)

        assert wait_until(gone, timeout=10), "an orphan kept running"
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


def refused(proc: subprocess.Popen[str]) -> str:
    """The output of an `up` expected to refuse to start (one that runs instead is stopped)."""
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        out = stop(proc)
        pytest.fail(f"the second `up` ran instead of refusing:\n{out}")
    return out


@pytest.mark.parametrize("same_ports", [False, True], ids=["own ports", "the first's ports"])
def test_a_second_up_of_one_site_refuses_and_leaves_the_first_alone(
    tmp_path: Path, same_ports: bool
) -> None:
    """Two `up` of one data dir would share its state and database: the second says so and exits."""
    first_dir, second_dir, var = tmp_path / "first", tmp_path / "second", tmp_path / "var"
    for d in (first_dir, second_dir):
        d.mkdir()
    listen = {
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
    }
    a, b = first_dir / "a.pid", second_dir / "b.pid"
    first = start_up(first_dir, {"gateway": notifier(a)}, LISTGATE_DATA_DIR=str(var), **listen)
    try:
        until_up(first)
        (child,) = pids(a)
        second = start_up(
            second_dir,
            {"gateway": notifier(b)},
            LISTGATE_DATA_DIR=str(var),
            **(listen if same_ports else {}),
        )
        out = refused(second)
        assert second.returncode == 1, out
        assert out.strip() == (
            f"Error: `listgate up` is already running on the data dir {var.resolve()} "
            f"(pid {first.pid}): stop it first (Ctrl-C where it runs, or kill {first.pid}), "
            "or set LISTGATE_DATA_DIR to another directory to run a second site"
        )
        assert not b.exists(), "the second `up` started a service"
        # The first runs on untouched: its child, its state file, its readiness socket.
        assert first.poll() is None and alive(child) and pids(a) == [child]
        state = read_state(state_file(var))
        assert state is not None and state["pid"] == first.pid, state
        assert state["children"]["gateway"]["pid"] == child
        assert f"gateway    ok     pid {child}" in status_of(tmp_path)
        a.unlink()
        os.kill(child, signal.SIGKILL)
        (again,) = pids(a)
        assert wait_until(lambda: f"gateway    ok     pid {again}" in status_of(tmp_path))
    finally:
        out_first = stop(first)
    assert f"gateway is serving again (pid {again})" in out_first, out_first
    assert first.returncode == 0, out_first


def test_up_killed_outright_is_not_reported_running_and_the_next_up_starts(
    tmp_path: Path,
) -> None:
    a, var = tmp_path / "a.pid", tmp_path / "var"
    proc = start_up(tmp_path, {"gateway": notifier(a)})
    until_up(proc)
    (child,) = pids(a)
    assert f"gateway    ok     pid {child}" in status_of(tmp_path)
    proc.kill()  # SIGKILL: no chance to remove its state file or to let go of anything
    proc.communicate(timeout=30)
    assert wait_until(lambda: not alive(child), timeout=10), "an orphan kept running"
    left = state_file(var)
    assert left.exists()
    # The pid in the state file left behind may be anybody's by now: here a live process's.
    left.write_text(json.dumps({**json.loads(left.read_text()), "pid": os.getpid()}))
    assert read_state(left) is None
    assert "gateway" not in status_of(tmp_path)
    a.unlink()
    again = start_up(tmp_path, {"gateway": notifier(a)})
    try:
        until_up(again)
        (child,) = pids(a)
        state = read_state(left)
        assert state is not None and state["pid"] == again.pid, state
        assert f"gateway    ok     pid {child}" in status_of(tmp_path)
    finally:
        out = stop(again)
    assert again.returncode == 0, out


def test_ups_of_two_sites_run_side_by_side_each_hearing_its_own_children(tmp_path: Path) -> None:
    """Each data dir has its own `up`: neither refuses, each restarts and hears its own child."""
    tmp, first_dir, second_dir = tmp_path / "tmp", tmp_path / "first", tmp_path / "second"
    for d in (tmp, first_dir, second_dir):
        d.mkdir()
    a, b = first_dir / "a.pid", second_dir / "b.pid"
    first = start_up(first_dir, {"gateway": notifier(a)}, TMPDIR=str(tmp))
    second = None
    try:
        until_up(first)
        second = start_up(second_dir, {"gateway": notifier(b)}, TMPDIR=str(tmp))
        until_up(second)
        (child,), (other,) = pids(a), pids(b)
        assert f"gateway    ok     pid {child}" in status_of(first_dir)
        assert f"gateway    ok     pid {other}" in status_of(second_dir)
        a.unlink()
        os.kill(child, signal.SIGKILL)
        (again,) = pids(a)
        # the new child has said it is ready (its pid file comes first): then stop
        assert wait_until(lambda: f"gateway    ok     pid {again}" in status_of(first_dir))
    finally:
        out_first = stop(first)
        out_second = stop(second) if second is not None else ""
    assert f"gateway is serving again (pid {again})" in out_first, out_first
    assert "serving again" not in out_second, out_second
    assert first.returncode == 0 and second is not None and second.returncode == 0, out_second
    assert left_behind(tmp, first_dir / "var" / "run") == []
    assert left_behind(tmp, second_dir / "var" / "run") == []


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


# A stand-in that says READY=1 and, on SIGTERM, takes argv[3] seconds to stop (the real services
# finish their work first); it notes when it started and when it stopped, beside its pid file.
SLOW_TO_STOP = NOTIFIER.replace(
    "notify_ready(Settings.from_env())\ntime.sleep(600)\n",
    "import signal\n"
    "def stop(*_):\n"
    "    until = time.time() + float(sys.argv[3])\n"
    "    while time.time() < until and not pathlib.Path(sys.argv[1] + '.release').exists():\n"
    "        time.sleep(0.05)\n"
    "    pathlib.Path(sys.argv[1] + '.stopped').write_text(repr(time.time()))\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "pathlib.Path(sys.argv[1] + '.started').write_text(repr(time.time()))\n"
    "notify_ready(Settings.from_env())\n"
    "while True: time.sleep(1)\n",
)


def slow_to_stop(pidfile: Path, seconds: float) -> list[str]:
    """A stand-in service taking `seconds` to stop on SIGTERM, or until `release(pidfile)`."""
    return ["-c", SLOW_TO_STOP, str(pidfile), "", str(seconds)]  # no gate (NOTIFIER's argv[2])


def release(pidfile: Path) -> None:
    """Let the stand-in of slow_to_stop(pidfile, ...) finish stopping now."""
    Path(f"{pidfile}.release").touch()


def first_line(proc: subprocess.Popen[str]) -> str:
    """The first line `up` writes."""
    assert proc.stdout is not None
    return proc.stdout.readline()


def noted(path: Path) -> float:
    """The time a stand-in noted in path."""
    assert wait_until(path.exists, timeout=10), f"{path.name} was not written"
    return float(path.read_text())


def test_up_started_right_after_a_kill_9_waits_for_the_killed_ups_services(
    tmp_path: Path,
) -> None:
    """Their ports and their work are theirs until they are gone: the next `up` says it waits."""
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    first = start_up(tmp_path, {"gateway": slow_to_stop(a, 60)})
    until_up(first)
    (old,) = pids(a)
    first.kill()  # SIGKILL: the kernel sends the service SIGTERM; it stops once released
    first.wait(30)  # (its output stays open until the service is gone)
    assert alive(old) and "gateway" not in status_of(tmp_path), "a killed `up` shown running"
    second = start_up(tmp_path, {"gateway": slow_to_stop(b, 0)})
    lines: list[str] = []
    try:
        lines = [first_line(second)]  # written while the old service still runs, however slow
        release(a)
        lines += until_up(second)
        (new,) = pids(b)
    finally:
        release(a)
        out = "".join(lines) + stop(second)
        first.communicate(timeout=30)
    assert lines[0] == (
        f"waiting for the services of the killed `listgate up` (pid {first.pid}) to stop "
        "(at most 15s) ...\n"
    ), out
    assert noted(Path(f"{a}.stopped")) <= noted(Path(f"{b}.started")), (
        f"the new service (pid {new}) started while the old one (pid {old}) still ran"
    )
    assert second.returncode == 0, out


def test_services_of_a_killed_up_that_do_not_stop_are_named_with_what_to_do(
    tmp_path: Path,
) -> None:
    a, b, c, var = tmp_path / "a.pid", tmp_path / "b.pid", tmp_path / "c.pid", tmp_path / "var"
    first = start_up(tmp_path, {"gateway": slow_to_stop(a, 3600)})  # it hangs on SIGTERM
    try:
        until_up(first)
        (hung,) = pids(a)
        first.kill()
        first.wait(30)
        second = start_up(
            tmp_path, {"gateway": slow_to_stop(b, 0)}, setup="launch.uplock.STOP_WAIT_SECONDS = 1"
        )
        out = refused(second)
        assert second.returncode == 1, out
        assert not b.exists(), "the new `up` started a service beside the hung one"
        waiting, error = out.splitlines()
        assert waiting == (
            f"waiting for the services of the killed `listgate up` (pid {first.pid}) to stop "
            "(at most 1s) ..."
        )
        # The service is named by its pid and its command line (cut short: this one is a script).
        assert re.fullmatch(
            rf"Error: the services of the killed `listgate up` \(pid {first.pid}\) on the data "
            rf"dir {re.escape(str(var.resolve()))} did not stop within 1s: pid {hung} "
            rf"\({re.escape(sys.executable)} -c import os, sys, [^)]{{1,30}}\.\.\.\); "
            rf"stop them \(kill {hung}, or kill -9 {hung} if they hang\) and start "
            r"`listgate up` again",
            error,
        ), error
    finally:
        if a.exists():
            os.killpg(int(a.read_text()), signal.SIGKILL)  # the stand-in leads its own group
        first.communicate(timeout=30)
    assert wait_until(lambda: not alive(hung), timeout=10)
    # Once it is gone the next `up` starts at once, without waiting.
    third = start_up(tmp_path, {"gateway": slow_to_stop(c, 0)})
    try:
        lines = until_up(third)
    finally:
        out = "".join(lines) + stop(third)
    assert not any("waiting" in line for line in lines), out
    assert third.returncode == 0, out


def test_up_after_a_kill_9_whose_pid_another_process_took_waits_and_starts(
    tmp_path: Path,
) -> None:
    """pids come round again (32768 of them here): the lock names the killed `up`'s pid, which a
    new process took; the next `up` must see it is not that `up`, wait for the services, start.
    """
    a, b, var = tmp_path / "a.pid", tmp_path / "b.pid", tmp_path / "var"
    first = start_up(tmp_path, {"gateway": slow_to_stop(a, 60)})
    sleep = second = None
    lines: list[str] = []
    try:
        until_up(first)
        first.kill()  # SIGKILL: its service holds the lock until it is released
        first.wait(30)
        sleep = subprocess.Popen(["sleep", "600"])  # the unrelated process that got the pid
        lock = var / "run" / "up.lock"
        words = lock.read_text().split()
        assert words[0] == str(first.pid), words
        lock.write_text(" ".join([str(sleep.pid), *words[1:]]) + "\n")  # as if the pid came round
        second = start_up(tmp_path, {"gateway": slow_to_stop(b, 0)})
        lines = [first_line(second)]  # written while the old service still runs, however slow
        release(a)
        lines += until_up(second)
    finally:
        release(a)
        out = stop(second) if second is not None else ""
        first.communicate(timeout=30)
        if sleep is not None:
            sleep.kill()
            sleep.wait()
    assert sleep is not None and lines[0] == (
        f"waiting for the services of the killed `listgate up` (pid {sleep.pid}, a number "
        "another process has taken since) to stop (at most 15s) ...\n"
    ), "".join(lines) + out
    assert noted(Path(f"{a}.stopped")) <= noted(Path(f"{b}.started"))
    assert second.returncode == 0, out
