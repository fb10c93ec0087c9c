"""listgate's own processes for the tests: the
gateway, archiver, web archive and a Celery worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from tests.support.config import ROOT


class WorkerProcess:
    """`python -m worker worker` in its own process
    group (so SIGKILL takes its pool children too).
    """

    def __init__(
        self, env: dict[str, str], log: Path, concurrency: int = 2, extra: tuple[str, ...] = ()
    ) -> None:
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.log = log
        self.concurrency = concurrency
        self.extra = extra  # more of Celery's worker options
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start and wait until Celery says it is ready."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "worker",
                    "worker",
                    "-c",
                    str(self.concurrency),
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-P",
                    "prefork",
                    *self.extra,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:]
            if b"worker ready" in text:  # listgate.readiness, once Celery consumes
                return self
            if self.proc.poll() is not None:
                self.abandon()
                raise RuntimeError(
                    f"worker exited with {self.proc.returncode}:\n"
                    f"{text.decode(errors='replace')[-3000:]}"
                )
            time.sleep(0.1)
        self.abandon()
        raise RuntimeError(
            f"worker not ready after {timeout}s:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The started process (an AssertionError before start())."""
        assert self.proc is not None, "not started"
        return self.proc

    def abandon(self) -> None:
        """SIGKILL what is left of a process that did not start: its caller gets no object to
        stop it with (a worker's pool outlives a worker that exited).
        """
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL the worker and its pool: no chance to finish, ack or clean up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Cold shutdown (SIGQUIT: the tests have waited
        for the work they check), SIGKILL if it hangs.
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # the main process only: it stops its pool itself
        try:
            # a cold shutdown can idle in broker/pool timeouts: not worth waiting for
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.kill()


class Service(WorkerProcess):
    """`python -m <module>` in its own process group, logging to a file, ready once its port
    listens.

    kill() (SIGKILL to the whole group) is the worker tests' own.
    """

    def __init__(
        self,
        module: str,
        env: dict[str, str],
        log: Path,
        port: int,
        args: Iterable[str] = (),
        prefix: Iterable[str] = (),
    ) -> None:
        self.module, self.args, self.prefix = module, list(args), list(prefix)
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.log, self.port = log, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Service:
        """Start and wait until the port accepts connections."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", self.module, *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.abandon()
                raise RuntimeError(
                    f"{self.module} exited with {self.proc.returncode}:\n{self.text()[-3000:]}"
                )
            if not self.port:  # a process that listens nowhere (the archiver): started is ready
                return self
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.abandon()
        raise RuntimeError(
            f"{self.module} did not listen on {self.port} after {timeout}s:\n{self.text()[-3000:]}"
        )

    def text(self) -> str:
        """Everything the process logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


def gateway(env: dict[str, str], log: Path, prefix: Iterable[str] = ()) -> Service:
    """The SMTP gateway process for env (not started); `prefix` wraps the command (e.g. setpriv)."""
    return Service(
        "gateway", env, log, int(env["LISTGATE_SMTP_LISTEN"].rsplit(":", 1)[1]), prefix=prefix
    )


def archiver(env: dict[str, str], log: Path, batch: int = 50) -> Service:
    """The archiver as its own process (`python -m gateway --archiver-only`), not started."""
    return Service("gateway", env, log, 0, ["--archiver-only", "--batch", str(batch)])


def webarchive(env: dict[str, str], log: Path) -> Service:
    """The web archive process for env (not started)."""
    return Service("webarchive", env, log, int(env["LISTGATE_WEB_LISTEN"].rsplit(":", 1)[1]))


def http_get(url: str, timeout: float = 20.0) -> tuple[int, str]:
    """(status, body text) of a GET; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
