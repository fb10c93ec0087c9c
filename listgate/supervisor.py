"""Run the listgate processes as children of `listgate up`: start them, restart the dead, stop them
together.

A child that exits on its own is started again after a pause that doubles with each quick
death (1 s, 2 s, 4 s ... at most a minute) and starts over once it has run for a while; only
Ctrl-C or SIGTERM stops everything. Each restart is logged at WARNING and recorded in a small
state file that `listgate status` reads. A child says it serves by sending READY=1 to the
socket in NOTIFY_SOCKET (listgate.readiness), the way systemd's Type=notify services do; both
live in the data directory's run/, where the next start removes what a killed `up` left.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listgate import uplock

log = logging.getLogger("listgate.up")

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 15.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
STABLE_SECONDS = (
    30.0  # a child that ran this long before dying is restarted after FIRST_BACKOFF again
)
SILENT_READY_SECONDS = 1.0  # a child that does not notify counts as ready once it has run this long
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Service:
    """A child of `listgate up`: its name, its arguments to this Python, whether it says READY=1."""

    name: str
    args: tuple[str, ...]
    notifies: bool = True


@dataclass
class Child:
    """One service's running state."""

    service: Service
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready: bool = False
    restarts: int = 0
    quick_deaths: int = 0
    restart_at: float | None = None
    last_exit: str = ""

    def describe(self, now: float) -> dict[str, Any]:
        """The state `listgate status` shows."""
        state = (
            "ready" if self.ready else ("restarting" if self.restart_at is not None else "starting")
        )
        return {
            "pid": self.proc.pid if self.proc and self.restart_at is None else None,
            "state": state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "restart_in": round(max(0.0, self.restart_at - now), 1)
            if self.restart_at is not None
            else None,
        }


def _child_setup() -> None:
    """In the child: its own process group, and SIGTERM if `listgate up` itself dies."""
    os.setsid()
    # Not Linux (OSError, AttributeError): Ctrl-C and SIGTERM still stop everything.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def backoff(quick_deaths: int) -> float:
    """Seconds to wait before the next start after this many quick deaths in a row."""
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, quick_deaths - 1))


def exit_reason(code: int) -> str:
    """'status 3' or 'signal 9 (SIGKILL)' for a child's return code."""
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


class Supervisor:
    """Starts the services, restarts those that die, stops them all on a signal."""

    def __init__(
        self,
        services: Sequence[Service],
        echo: Callable[[str], None],
        on_ready: Callable[[], None] | None = None,
        state_path: Path | None = None,
        inherited: tuple[int, ...] = (),
    ) -> None:
        """inherited: descriptors each child keeps (the data dir's lock, held till all are gone)."""
        self.children = {s.name: Child(s) for s in services}
        self.inherited = inherited
        self.echo = echo
        self.on_ready = on_ready
        self.state_path = state_path
        self.stop_requested = False
        self.announced = False
        self._sock, self.notify_path, self._temp_dir = _notify_socket(
            state_path.parent if state_path is not None else None
        )

    def request_stop(self, signum: int = 0, _frame: object = None) -> None:
        """Signal handler: leave the watch loop and stop the children."""
        self.stop_requested = True

    def _start(self, child: Child) -> None:
        # The children inherit this environment, plus where to say READY=1.
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path)}
        child.proc = subprocess.Popen(
            [sys.executable, *child.service.args],
            env=env,
            pass_fds=self.inherited,
            # The death signal can only be asked for in the child; `listgate up` runs no threads.
            preexec_fn=_child_setup,  # noqa: PLW1509
        )
        child.started, child.ready, child.restart_at = time.monotonic(), False, None

    def start(self) -> None:
        """Start every service with this Python, in its own process group."""
        for child in self.children.values():
            self._start(child)
        self._save()

    def run(self) -> int:
        """Start, watch (restarting the dead) until a signal, stop all; 0 after a requested stop."""
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            self.watch()
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def watch(self) -> None:
        """Until asked to stop: collect READY=1, restart dead children, announce readiness once."""
        while not self.stop_requested:
            self._receive(POLL_SECONDS)
            now = time.monotonic()
            changed = False
            for child in self.children.values():
                changed |= self._check(child, now)
            if changed:
                self._save()
            if not self.announced and all(c.ready for c in self.children.values()):
                self.announced = True
                if self.on_ready is not None:
                    self.on_ready()
        self.echo("stopping (signal received)")

    def _check(self, child: Child, now: float) -> bool:
        """Restart a child that is due, notice a death, mark a quiet one ready; True on a change."""
        if child.restart_at is not None:
            if now < child.restart_at:
                return False
            self._start(child)
            assert child.proc is not None
            child.restarts += 1
            log.warning(
                "restarted %s (pid %d, restart %d)",
                child.service.name,
                child.proc.pid,
                child.restarts,
            )
            return True
        assert child.proc is not None
        code = child.proc.poll()
        if code is None:
            if (
                not child.ready
                and not child.service.notifies
                and now - child.started >= SILENT_READY_SECONDS
            ):
                child.ready = True
                return True
            return False
        lived = now - child.started
        child.quick_deaths = 1 if lived >= STABLE_SECONDS else child.quick_deaths + 1
        delay = backoff(child.quick_deaths)
        child.ready, child.restart_at = False, now + delay
        child.last_exit = (
            f"exited with {exit_reason(code)} at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
        )
        log.warning(
            "%s (pid %d) exited with %s after %.0fs; restarting it in %.0fs",
            child.service.name,
            child.proc.pid,
            exit_reason(code),
            lived,
            delay,
        )
        return True

    def _receive(self, timeout: float) -> None:
        """Read READY=1 datagrams for up to timeout seconds and mark their senders ready."""
        readable, _, _ = select.select([self._sock], [], [], timeout)
        while readable:
            try:
                data = self._sock.recv(4096).decode("utf-8", "replace")
            except BlockingIOError:
                return
            fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            if fields.get("READY") != "1" or not fields.get("MAINPID", "").isdigit():
                continue
            for child in self.children.values():
                if (
                    child.proc is not None
                    and child.proc.pid == int(fields["MAINPID"])
                    and not child.ready
                ):
                    child.ready = True
                    if child.restarts:
                        log.warning(
                            "%s is serving again (pid %d)", child.service.name, child.proc.pid
                        )
                    self._save()

    def _save(self) -> None:
        """Write the state file `listgate status` reads (atomically)."""
        if self.state_path is None:
            return
        now = time.monotonic()
        state = {
            "pid": os.getpid(),
            "started": uplock.start_time(
                os.getpid()
            ),  # which process the pid was (pids come round)
            "children": {n: c.describe(now) for n, c in self.children.items()},
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(state))
            tmp.replace(self.state_path)
        except OSError as exc:  # a full disk must not stop the supervisor
            log.debug("cannot write %s: %s", self.state_path, exc)

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every running child, SIGKILL the groups of those still alive after grace seconds.

        Only the child itself gets SIGTERM: a Celery worker then finishes its tasks and stops
        its own pool (signalling the pool processes directly would kill tasks mid-way).
        """
        procs = {n: c.proc for n, c in self.children.items() if c.proc is not None}
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, proc in procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"{name} did not stop within {grace:.0f}s; killing it")
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        for proc in procs.values():
            _signal_group(proc, signal.SIGKILL)  # stragglers left in a group (e.g. celery's pool)
        self.echo(f"stopped {', '.join(procs)}")
        self._sock.close()
        for path in (self.notify_path, self.state_path):
            if path is not None:
                path.unlink(missing_ok=True)
        if self._temp_dir is not None:
            self._temp_dir.rmdir()


def state_file(data_dir: Path) -> Path:
    """Where `listgate up` records its state for `listgate status` (beside its socket)."""
    return data_dir / "run" / "up.json"


def _notify_socket(run_dir: Path | None) -> tuple[socket.socket, Path, Path | None]:
    """Bind this supervisor's readiness socket: (socket, path, temporary directory to remove).

    It is run_dir/notify-PID (the pid keeps it apart from a killed supervisor's); the sockets
    that supervisors killed outright left there are removed first. Without a run_dir, or
    where run_dir cannot hold a socket (a path too long for one, a file system without them),
    it goes in a private temporary directory instead, which a killed supervisor leaves behind.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if run_dir is not None:
        path = run_dir / f"notify-{os.getpid()}"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_sockets(run_dir)
            sock.bind(str(path))
            return sock, path, None
        except OSError as exc:
            log.warning(
                "cannot make the readiness socket %s (%s); using a temporary one", path, exc
            )
    temp_dir = Path(tempfile.mkdtemp(prefix="listgate-up-"))
    try:
        sock.bind(str(temp_dir / "notify"))
    except OSError:
        sock.close()
        temp_dir.rmdir()
        raise
    return sock, temp_dir / "notify", temp_dir


def remove_stale_sockets(run_dir: Path) -> list[Path]:
    """Remove the readiness sockets in run_dir that nobody receives on any more; those removed.

    Whether a supervisor still owns one is asked of the socket itself: an empty datagram, which
    a live supervisor ignores, is refused only when nobody has it bound (process ids get reused).
    """
    removed = []
    for path in sorted(run_dir.glob("notify-*")):
        if not path.is_socket():
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.setblocking(False)  # a live supervisor's full queue must not hold this start
            try:
                probe.sendto(b"", str(path))
            except ConnectionRefusedError:
                path.unlink(missing_ok=True)
                removed.append(path)
            except OSError:  # alive but busy, not a socket, or gone meanwhile: leave it
                continue
    if removed:
        log.info("removed readiness sockets left by killed supervisors: %s", removed)
    return removed


def read_state(path: Path) -> dict[str, Any] | None:
    """The state a running `listgate up` wrote, or None when none runs (or the file is stale).

    Whether one runs is asked of the data dir's lock, which a killed `up` does not keep (its
    services hold it while they stop: then its pid in the file is dead, or another process's,
    told apart by its start time); only where the lock cannot tell is it whether the pid in the
    file lives.
    """
    try:
        state = json.loads(path.read_text())
        running = uplock.held(path.parent.parent)
        if running is None:
            os.kill(int(state["pid"]), 0)
        elif not running or not uplock.alive(int(state["pid"]), state.get("started")):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
