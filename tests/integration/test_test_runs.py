"""The test runs themselves: a run killed outright (kill -9 of pytest, no `finally` runs) takes
the servers it started with it (tests/support/reaper.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.config import ROOT, free_port
from tests.support.processes import Service
from tests.unit.listgate.test_cli import alive, wait_until

pytestmark = pytest.mark.integration

# A test that starts a real gateway (in its own process group, as the suite's do), notes its
# pid, and waits to be killed.
INNER = """
import os, time
from pathlib import Path
from tests.support.config import env_for, prepare
from tests.support.processes import gateway

def test_serves_until_killed(tmp_path):
    env = env_for(tmp_path)
    prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    Path(os.environ["INNER_PIDFILE"]).write_text(str(gw.proc.pid))
    time.sleep(600)
"""


def pytest_in(checkout: Path, test: str) -> list[str]:
    """The command running the suite's plugins (tests/conftest.py) on test, written in checkout."""
    checkout.mkdir(exist_ok=True)
    (checkout / "pytest.ini").write_text("[pytest]\n")  # not the suite's options
    (checkout / "test_inner.py").write_text(test)
    plugins = ["-p", "tests.conftest", "-p", "no:cacheprovider"]
    where = ["--rootdir", str(checkout), "-c", str(checkout / "pytest.ini")]
    return [sys.executable, "-m", "pytest", "-q", *plugins, *where, str(checkout / "test_inner.py")]


def test_a_test_run_killed_outright_leaves_no_server_running(tmp_path: Path) -> None:
    pidfile, log = tmp_path / "gateway.pid", tmp_path / "run.log"
    with open(log, "wb") as out:
        run = subprocess.Popen(
            pytest_in(tmp_path, INNER),
            cwd=ROOT,
            # TMPDIR: the inner run's temp dirs are this test's
            env={**os.environ, "INNER_PIDFILE": str(pidfile), "TMPDIR": str(tmp_path)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = 0
    try:
        assert wait_until(lambda: pidfile.exists() or run.poll() is not None, 120), log.read_text()
        assert run.poll() is None, f"the inner run ended:\n{log.read_text()}"
        server = int(pidfile.read_text())
        run.kill()  # kill -9: no fixture teardown, no `finally`, no atexit
        run.wait()
        assert wait_until(lambda: not alive(server), 10), (
            f"the gateway (pid {server}) of a test run killed with kill -9 still runs 10s later"
        )
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if server and alive(server):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server, signal.SIGKILL)  # the gateway leads its own process group


KEEP = """
from pathlib import Path

def test_keeps(tmp_path, pytestconfig):
    (pytestconfig.rootpath / "kept").write_text(str(tmp_path))
"""


def run_in(checkout: Path, env: dict[str, str], *args: str) -> Path:
    """Run the suite's plugins in checkout (a test noting its tmp_path); that tmp_path."""
    done = subprocess.run(
        [*pytest_in(checkout, KEEP), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Path((checkout / "kept").read_text())


@pytest.mark.long(31)
def test_each_checkout_keeps_its_own_last_runs_temp_dirs(tmp_path: Path) -> None:
    """pytest keeps the temp dirs of the last three runs (to look into after a failure): the
    runs of another checkout (CI in one worktree, a helper's tests in another) must not count.
    """
    tmp = tmp_path / "tmp"  # this test's own, standing for the machine's /tmp
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DEBUG_TEMPROOT"}
    env["TMPDIR"] = str(tmp)
    failed_ci_run = run_in(tmp_path / "ci", env)
    others = [run_in(tmp_path / "helper", env) for _ in range(4)]
    assert failed_ci_run.exists(), (
        f"another checkout's {len(others)} runs deleted this checkout's last run's {failed_ci_run}"
    )
    assert not failed_ci_run.is_relative_to(others[-1].parent.parent)
    assert [p.exists() for p in others] == [False, True, True, True], "the disk is not bounded"
    # A checkout removed: the next run anywhere removes its temp dirs.
    shutil.rmtree(tmp_path / "ci")
    run_in(tmp_path / "helper", env)
    assert not failed_ci_run.exists(), "the temp dirs of a removed checkout stay forever"


@pytest.mark.long(63)
def test_a_parallel_runs_workers_keep_short_temp_dirs_and_only_the_last_runs(
    tmp_path: Path,
) -> None:
    """Under pytest-xdist a worker's temp dirs are no deeper than a serial run's (the deepest
    tests make unix sockets there, whose paths hold 107 bytes), and they go with their run
    (pytest keeps three runs, and removes the oldest of four as the next run begins)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DEBUG_TEMPROOT"}
    env["TMPDIR"] = str(tmp)
    serial = run_in(tmp_path / "ci", env)
    parallel = [run_in(tmp_path / "ci", env, "-n", "1") for _ in range(5)]
    assert all(len(str(p)) <= len(str(serial)) for p in parallel), (serial, parallel)
    root = serial.parents[2]
    assert sorted(p.name for p in root.glob("pytest-*-gw*")) == sorted(
        p.parent.name for p in parallel[1:]
    ), "the workers' temp dirs of runs no longer kept stay"


def test_a_service_that_never_serves_is_not_left_running(tmp_path: Path) -> None:
    """A process that does not become ready raises, and nobody else holds it to stop it."""
    listens_elsewhere = Service(
        "http.server", {}, tmp_path / "server.log", free_port(), [str(free_port())]
    )
    with pytest.raises(RuntimeError, match="did not listen"):
        listens_elsewhere.start(timeout=2)
    assert listens_elsewhere.proc is not None
    assert wait_until(lambda: not alive(listens_elsewhere.process.pid), 5), "left running"
