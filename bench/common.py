"""What every benchmark shares: result rows, the run context, processes, timing, machine facts."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

T = TypeVar("T")

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
LINUX_MAN = CORPORA / "linux-man" / "linux-man.mbox.xz"
PYTHON = sys.executable
DOMAIN = "bench.test"


class NotAvailable(Exception):
    """Nothing to measure (a corpus or peer missing, a process failing): the row says why.

    It carries no number.
    """


@dataclass
class Row:
    """One line of the results table."""

    bench: str
    case: str
    value: str = ""
    ratio: str = ""
    goal: str = ""
    verdict: str = ""  # "met", "MISSED", "" (no goal) or "n/a"
    note: str = ""

    @classmethod
    def unavailable(cls, bench: str, case: str, reason: str, goal: str = "") -> Row:
        """A row for something that could not be measured."""
        return cls(bench, case, f"not available: {reason}", goal=goal, verdict="n/a")


def median(values: Sequence[float]) -> float:
    """The median; 0.0 for no values."""
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def fmt_rate(value: float, unit: str = "/s") -> str:
    """A rate with sensible digits."""
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.1f}{unit}"


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds."""
    ms = seconds * 1000
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def fmt_mb(kib: float) -> str:
    """KiB (as rusage and /proc give them) as MB."""
    return f"{kib / 1024:,.0f} MB"


def verdict(ok: bool) -> str:
    """'met' or 'MISSED'."""
    return "met" if ok else "MISSED"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(
    host: str, port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None
) -> None:
    """Wait until something accepts connections on host:port; NotAvailable if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise NotAvailable(f"process exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise NotAvailable(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, in KiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def children_pids(pid: int) -> list[int]:
    """Direct and indirect children of pid (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Proc:
    """A process started by a benchmark; stop() ends its process group."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM its group, then SIGKILL; returns the exit status."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                pid, status = os.waitpid(self.popen.pid, os.WNOHANG)
                if pid:
                    self.popen.returncode = os.waitstatus_to_exitcode(status)
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # workers the main process started may outlive it: end the rest of the group too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode or 0

    def tail(self, lines: int = 15) -> str:
        """The end of the process's log, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def run_measured(
    cmd: list[str],
    env: dict[str, str],
    log_path: Path,
    timeout: float | None = None,
    stdin: Path | None = None,
) -> tuple[int, float, int]:
    """Run cmd to the end: (exit status, wall seconds, peak RSS KiB of that process)."""
    with (
        open(log_path, "ab") as out,
        open(stdin, "rb") if stdin else contextlib.nullcontext() as inp,
    ):
        started = time.perf_counter()
        popen = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=inp or subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
            if pid:
                popen.returncode = os.waitstatus_to_exitcode(status)
                return popen.returncode, time.perf_counter() - started, usage.ru_maxrss
            if deadline is not None and time.monotonic() > deadline:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
                raise NotAvailable(f"{Path(cmd[0]).name} did not finish within {timeout:.0f}s")
            time.sleep(0.02)


@dataclass
class Context:
    """One benchmark run: where files go, how big, and what to stop at the end."""

    workdir: Path
    quick: bool
    repeats: int
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    memo: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        """A path in this run's work dir (parent created)."""
        p = self.workdir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def once(self, key: str, make: Callable[[], T]) -> T:
        """Build a shared resource once per run (a server, a decompressed corpus, an archive)."""
        if key not in self.memo:
            try:
                self.memo[key] = make()
            except NotAvailable as exc:
                self.memo[key] = exc
        value = self.memo[key]
        if isinstance(value, NotAvailable):
            raise value
        return cast(T, value)  # what make() built for this key

    def start(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Proc:
        """Start a process in its own group, logging to the work dir; stopped at the run's end."""
        log_path = self.path("logs", f"{name}.log")
        with open(log_path, "ab") as out:  # the child keeps its own copy of the descriptor
            popen = subprocess.Popen(
                cmd,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.stack.callback(proc.stop)
        return proc


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Context]:
    """A quick Context in a temporary directory, for a tool run alone: its servers stop, then its
    files go."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as workdir:
        ctx = Context(Path(workdir), True, 1)
        with ctx.stack:
            yield ctx


def listgate_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for listgate processes of one benchmark archive (limits raised for load)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTGATE_")}
    env.update(
        {
            "LISTGATE_DATA_DIR": str(data_dir),
            "LISTGATE_DOMAIN": DOMAIN,
            "LISTGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "LISTGATE_LOG_LEVEL": "WARNING",
            "LISTGATE_MAX_MESSAGES_PER_MINUTE": "100000000",
            "LISTGATE_MAX_CONNECTIONS_PER_CLIENT": "1024",
            "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
            "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def machine_info() -> dict[str, str]:
    """Cores, memory, Python, SQLite, PostgreSQL, date: for the report's header."""
    import sqlite3

    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{os.cpu_count()} cores ({cpu or platform.machine()})",
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _pg_version(),
        "load average at start": load,
    }


def _pg_version() -> str:
    from bench.services import pg_bin

    binary = pg_bin("postgres")
    if binary is None:
        return "not installed"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    return "unknown"


def worker_rss(ctx: Context) -> list[tuple[str, int, int]]:
    """The fan-out benchmark's worker memory per case (case, largest process, all processes),
    which the memory benchmark reports."""
    found = ctx.memo.setdefault("worker-rss", [])
    return cast("list[tuple[str, int, int]]", found)
