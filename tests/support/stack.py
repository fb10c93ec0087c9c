"""A whole listgate site for the journeys: `listgate up`
or separate processes, and HTTP reads of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.config import env_for
from tests.support.sink import SmtpSink

STARTUP_TIMEOUT = 60.0


@dataclass
class Stack:
    """Running listgate processes and how to reach them."""

    env: dict[str, str]
    smtp_port: int
    web_port: int
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)  # DNS TXT answers, for DKIM checks
    lists_named: int = 0

    def list_name(self, base: str = "dev") -> str:
        """A list name no earlier test on this stack used: base, then base2, base3, ..."""
        self.lists_named += 1
        return base if self.lists_named == 1 else f"{base}{self.lists_named}"

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Start a process with this stack's environment, logging to logs/NAME.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs[name] = proc
        return proc

    def listgate(self, *args: str) -> str:
        """Run a `listgate` subcommand to completion; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "listgate.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,  # a failure is reported with its output below
        )
        assert done.returncode == 0, f"listgate {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def log_tail(self, lines: int = 40) -> str:
        """The end of every process log, for failure messages."""
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def check_alive(self) -> None:
        """Fail with the logs when a process died."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(
                    f"{name} exited with status {proc.returncode}\n{self.log_tail()}", pytrace=False
                )

    def wait_ready(self) -> None:
        """Wait until SMTP answers and /healthz says ok."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            if smtp_ready(self.smtp_port) and get(self.web_port, "/healthz", quiet=True)[0] == 200:
                return
            time.sleep(0.2)
        pytest.fail(
            f"listgate did not come up within {STARTUP_TIMEOUT:.0f}s\n{self.log_tail()}",
            pytrace=False,
        )

    def stop(self) -> dict[str, int]:
        """SIGTERM every process (group), SIGKILL stragglers; their exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                killpg(proc, signal.SIGKILL)
                codes[name] = proc.wait()
            killpg(proc, signal.SIGKILL)
        return codes


def killpg(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal a process group that may be gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def smtp_ready(port: int) -> bool:
    """True when an SMTP server on the port answers NOOP."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def get(port: int, path: str, quiet: bool = False) -> tuple[int, str]:
    """GET a path from the web archive: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError:
        if quiet:
            return 0, ""
        raise


def get_json(port: int, path: str) -> Any:
    """GET a JSON document from the web archive; it must answer 200."""
    status, body = get(port, path)
    assert status == 200, f"GET {path}: {status} {body[:300]}"
    return json.loads(body)


def base_env(tmp_path: Path, sink: SmtpSink, **extra: str) -> dict[str, str]:
    """The process environment: everything in tmp_path, on free ports, mail out to the sink."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTGATE_")}
    env.update(
        env_for(
            tmp_path,
            LISTGATE_OUTBOUND=sink.url,
            LISTGATE_SECRET_KEY="end-to-end-secret-0123456789",
            PYTHONUNBUFFERED="1",
            **extra,
        )
    )
    return env


def make_stack(tmp_path: Path, env: dict[str, str]) -> Stack:
    """A Stack for env (ports read back from it)."""
    port = lambda name: int(env[name].rsplit(":", 1)[1])  # noqa: E731
    return Stack(
        env=env,
        smtp_port=port("LISTGATE_SMTP_LISTEN"),
        web_port=port("LISTGATE_WEB_LISTEN"),
        logs=tmp_path / "logs",
    )


def run_separately(stack: Stack) -> Iterator[Stack]:
    """Start gateway, worker, beat and web as separate
    processes, yield the stack once ready, stop them.
    """
    try:
        for name, args in (
            ("gateway", ["-m", "gateway"]),
            ("worker", ["-m", "worker", "worker"]),
            ("beat", ["-m", "worker", "beat"]),
            ("web", ["-m", "webarchive"]),
        ):
            stack.start(name, [sys.executable, *args])  # one failing stops those started
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def run_up(stack: Stack, *args: str) -> Iterator[Stack]:
    """Start `listgate up ARGS` (no demo list), yield the stack once it serves, stop it."""
    stack.start("up", [sys.executable, "-m", "listgate.cli", "up", "--no-demo", *args])
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()
