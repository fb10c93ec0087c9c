"""The processes a test run starts die with it, however it ends: kill -9 of pytest included.

At the start of a run (pytest_configure) a small watcher is started in its own session, so that
nothing aimed at pytest or its process group reaches it. It polls its parent, pytest, and once
pytest is gone (a normal exit, Ctrl-C, or kill -9 with no fixture teardown) it stops every
process the run left: SIGTERM, then SIGKILL after STOP_SECONDS.

A process is the run's, told by (pid, start time) since pids come round (32768 here), when:
- the watcher saw it below pytest (it notes pytest's descendants each second: Redis, the
  services in their own process groups, Celery's pool, Chromium under Playwright's driver);
- or its initial environment (/proc/PID/environ, which the kernel keeps) holds the run's token,
  set in pytest's environment before any test runs and inherited from then on: this finds the
  processes that lost their parent before the watcher saw them (a daemon, a service restarted
  by a `listgate up` killed meanwhile);
- or it was registered (register_server): PostgreSQL daemonizes and its children rewrite their
  environment for their process titles, so the cluster is stopped by its postmaster's pid (and
  its directory removed).
This was chosen over PR_SET_PDEATHSIG, which reaches only direct children, fires when the
*thread* that started the child ends, and is cleared when the child changes its user (runuser,
setpriv); and over process groups in a pidfile reaped at the next session's start, which leave
the servers running (their ports taken) until somebody runs the tests again, by then perhaps
under pids other processes have.

At the end of a normal run the processes it started that still run are named in the summary:
each is a leak of the fixture that started it (the watcher stops them once pytest exits).

Under pytest-xdist each worker is a run of its own (its own token and watcher, which stop only
what that worker started: its token replaces the main process's in what it starts); a worker
prints no summary, so it hands the names of its leaks to the main process, which prints them.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from listgate import uplock
from tests.support.config import ROOT

VARIABLE = "PYTEST_LISTGATE_RUN"  # not LISTGATE_*: tests strip those from the services' env
POLL_SECONDS = 0.2
Ident = tuple[int, str]  # (pid, start time): a pid alone may be another process's by now
STOP_SECONDS = 5.0  # SIGTERM, then this long to stop, then SIGKILL
_REGISTRY: list[Path] = []  # this run's list of servers to stop by pid (register_server)
log = logging.getLogger("tests.reaper")


def pytest_configure(config: pytest.Config) -> None:
    """Give this run its token and start the watcher that stops what the run leaves."""
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    registry = Path(tempfile.mkdtemp(prefix="listgate-reaper-")) / "servers"
    registry.touch()
    _REGISTRY[:] = [registry]
    os.environ[VARIABLE] = token  # inherited by every process started from now on
    config.stash[_WATCHER] = subprocess.Popen(
        [sys.executable, "-m", "tests.support.reaper", token, str(os.getpid()), str(registry)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != VARIABLE},
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def left_running(config: pytest.Config) -> list[str]:
    """The processes this pytest process started that still run (but its watcher), named."""
    table = _table()
    watcher = config.stash[_WATCHER].pid
    left = descendants(os.getpid(), table) | carriers(os.environ[VARIABLE], table)
    return [f"pid {pid} ({command(pid)})" for pid, _ in sorted(left) if pid != watcher]


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker (which prints no summary): hand its leaks to the main process."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["left_running"] = left_running(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """In the main process of a pytest-xdist run: note what a worker left running."""
    output = getattr(node, "workeroutput", {})
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    config.stash.setdefault(_WORKERS_LEFT, []).extend(output.get("left_running", []))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Name the processes this run (its workers too) started that still run at its end (a
    fixture's leak).
    """
    named = config.stash.get(_WORKERS_LEFT, []) + left_running(config)
    if named:
        terminalreporter.write_line(
            f"processes the tests started still run at the end ({len(named)}; stopped once "
            f"pytest exits): {', '.join(named)}",
            yellow=True,
        )


_WATCHER = pytest.StashKey[subprocess.Popen[bytes]]()
_WORKERS_LEFT = pytest.StashKey[list[str]]()  # named by the workers of a pytest-xdist run


def register_server(pid: int, directory: Path | None = None) -> None:
    """Have a server that hides its environment (PostgreSQL) stopped with the run, and its
    directory removed; a no-op outside a test run.
    """
    for registry in _REGISTRY:
        with open(registry, "a") as out:
            out.write(f"{pid} {uplock.start_time(pid) or '?'} {directory or ''}\n")


def _table() -> dict[int, tuple[int, str]]:
    """pid: (parent pid, start time) of every running process, from /proc."""
    table = {}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # after the command name (which may hold spaces and ")")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] not in "ZX":  # fields 3, 4 and 22 of proc_pid_stat(5)
                table[int(proc.name)] = (int(fields[1]), fields[19])
    return table


def descendants(root: int, table: dict[int, tuple[int, str]]) -> set[Ident]:
    """The children of root, their children, and so on."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child, table[child][1]))
            todo.append(child)
    return found


def carriers(token: str, table: dict[int, tuple[int, str]]) -> set[Ident]:
    """The processes (but this one) whose initial environment holds this run's token."""
    needle = f"\0{VARIABLE}={token}\0".encode()
    found = set()
    for pid, (_, started) in table.items():
        with contextlib.suppress(OSError):
            if pid != os.getpid() and needle in b"\0" + Path(f"/proc/{pid}/environ").read_bytes():
                found.add((pid, started))
    return found


def command(pid: int) -> str:
    """pid's command line on one line, cut short."""
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def _running(ident: Ident) -> bool:
    return uplock.alive(*ident)


def _signal(idents: set[Ident], sig: int) -> None:
    for pid, _ in idents:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(idents: set[Ident], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(_running(i) for i in idents) and time.monotonic() < deadline:
        time.sleep(0.05)


def reap(token: str, known: set[Ident], registry: Path) -> list[str]:
    """Stop what the run left (SIGTERM, SIGKILL after STOP_SECONDS); those found, named."""
    try:
        lines = [line.split() for line in registry.read_text().splitlines()]
    except OSError:
        lines = []
    servers = {(int(w[0]), w[1]) for w in lines if w and _running((int(w[0]), w[1]))}
    left = {i for i in known | carriers(token, _table()) if _running(i)} - servers
    found = [f"pid {pid} ({command(pid)})" for pid, _ in sorted(left | servers)]
    _signal(servers, signal.SIGQUIT)  # PostgreSQL's immediate stop (its children follow it)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal(left, sig)
        _wait_gone(left | servers, STOP_SECONDS)
        _signal({i for i in servers if _running(i)}, signal.SIGKILL)
        # and what started meanwhile (a service its `up` restarted)
        left = {i for i in left if _running(i)} | carriers(token, _table())
        if not left:
            break
    for words in lines:
        if len(words) > 2:
            shutil.rmtree(words[2], ignore_errors=True)
    shutil.rmtree(registry.parent, ignore_errors=True)
    return found


def watch(token: str, parent: int, registry: Path) -> None:
    """Until the pytest process `parent` is gone, note its descendants; then reap the run's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for pytest; this one cleans up after
    known: set[Ident] = set()
    for n in itertools.count():
        if os.getppid() != parent:
            break
        if n % 5 == 0:  # each second: a child that lost its parent is still known to be the run's
            table = _table()
            known = {i for i in known if table.get(i[0], (0, ""))[1] == i[1]}
            known |= {i for i in descendants(parent, table) if i[0] != os.getpid()}
        time.sleep(POLL_SECONDS)
    found = reap(token, known, registry)
    if found:
        log.warning("test run %d ended leaving %s: stopped", parent, ", ".join(found))


if __name__ == "__main__":
    logging.basicConfig(format="%(message)s")  # to pytest's stderr, where there still is one
    watch(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
