"""Run the listgate processes as children of `listgate up` and stop them together."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 15.0


def _child_setup() -> None:
    """In the child: its own process group, and SIGTERM if `listgate up` itself dies."""
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: Ctrl-C and SIGTERM still stop everything
        pass


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Supervisor:
    """Starts named child commands, watches them, and stops them all on a signal or a death."""

    def __init__(self, services: Mapping[str, Sequence[str]], echo: Callable[[str], None],
                 ready: Callable[[], bool] | None = None, ready_message: str = "") -> None:
        self.services = services
        self.echo = echo
        self.ready = ready
        self.ready_message = ready_message
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = False

    def request_stop(self, signum: int = 0, _frame: object = None) -> None:
        """Signal handler: leave the watch loop and stop the children."""
        self.stop_requested = True

    def start(self) -> None:
        """Start every service with this Python, in its own process group."""
        for name, args in self.services.items():
            proc = subprocess.Popen([sys.executable, *args], preexec_fn=_child_setup)  # noqa: PLW1509
            self.procs[name] = proc
            self.echo(f"started {name} (pid {proc.pid})")

    def run(self) -> int:
        """Start, watch until a signal or a child's death, stop all; 0 after a requested stop."""
        previous = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            self.start()
            code = self.watch()
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def watch(self) -> int:
        """Poll the children; 1 as soon as one exits on its own, 0 when asked to stop."""
        announced = self.ready is None
        while not self.stop_requested:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    self.echo(f"{name} exited with status {proc.returncode}; stopping the others")
                    return 1
            if not announced and self.ready is not None and self.ready():
                announced = True
                self.echo(self.ready_message)
            time.sleep(0.2)
        self.echo("stopping (signal received)")
        return 0

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every running child, SIGKILL the groups of those still alive after grace seconds.

        Only the child itself gets SIGTERM: a Celery worker then finishes its tasks and stops
        its own pool (signalling the pool processes directly would kill tasks mid-way).
        """
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, proc in self.procs.items():
            already = proc.returncode is not None
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"{name} did not stop within {grace:.0f}s; killing it")
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            if not already:
                self.echo(f"stopped {name}")
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)  # stragglers left in a group (e.g. celery's pool)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
