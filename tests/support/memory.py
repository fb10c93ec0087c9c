"""A process's resident memory from /proc, for tests that bound what an attack costs a server."""

from __future__ import annotations

import time
from pathlib import Path

MB = 1024 * 1024


def status(pid: int, field: str) -> int:
    """A memory figure of a process from /proc/PID/status (VmRSS, VmHWM...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> int:
    """Start measuring the peak afresh (clear_refs 5 resets VmHWM); the resident size now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status(pid, "VmRSS")


def settle(pid: int) -> None:
    """Wait until the process's memory stops changing (it has read what was sent)."""
    last, still = -1, 0
    for _ in range(300):
        now = status(pid, "VmRSS")
        still = still + 1 if abs(now - last) < MB else 0
        if still >= 5:
            return
        last = now
        time.sleep(0.1)
