"""One `listgate up` per data directory: a lock on run/up.lock, held for as long as `up` runs.

The lock is the kernel's (flock): it goes with the process however that ends, kill -9 included,
so a killed supervisor never leaves a stale lock behind. The holder writes its pid in the file
for the message a second `up` prints; whether an `up` runs is asked of the lock alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("listgate.up")

# How long a starting `up` retries a taken lock: a `listgate status` holds it only for a moment.
RETRY_SECONDS = 1.0


class AlreadyRunning(Exception):
    """Another `listgate up` holds the data dir; the message names it, its pid, how to stop it."""


def lock_file(data_dir: Path) -> Path:
    """The lock `listgate up` holds while it runs (beside its state file and readiness socket)."""
    return data_dir / "run" / "up.lock"


@contextlib.contextmanager
def hold(data_dir: Path) -> Iterator[None]:
    """Hold data_dir's lock while the block runs; AlreadyRunning when another `up` holds it.

    Where no lock can be made (a read-only data dir, a file system without locks) `up` still
    runs, with a warning: refusing to serve would be worse than not refusing a second `up`.
    """
    path = lock_file(data_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        _cannot_lock(path, exc)
        fd = -1
    locked = False
    try:
        locked = fd >= 0 and _lock(fd, path)
        if locked:
            _write_pid(fd, f"{os.getpid()}\n")
        yield
    finally:
        if locked:
            _write_pid(fd, "")  # an `up` that stopped leaves no pid behind
        if fd >= 0:
            os.close(fd)  # the lock goes with the descriptor


def held(data_dir: Path) -> bool | None:
    """Whether a `listgate up` holds data_dir's lock; None where the lock cannot tell."""
    try:
        fd = os.open(lock_file(data_dir), os.O_RDONLY)
    except OSError:
        return None  # no lock file (an `up` older than the lock, or a read-only data dir)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None  # a file system without locks
    finally:
        os.close(fd)  # which lets go of the shared lock taken just now
    return False


def _lock(fd: int, path: Path) -> bool:
    """Take the lock, waiting RETRY_SECONDS for a passing probe; False where locks do not work."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise AlreadyRunning(_message(path, _holder(fd))) from None
            time.sleep(0.05)
        except OSError as exc:
            _cannot_lock(path, exc)
            return False


def _holder(fd: int) -> int | None:
    """The pid the holder wrote in the lock file (None if it has not written it yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _write_pid(fd: int, text: str) -> None:
    with contextlib.suppress(OSError):  # a full disk must not stop `up`: the lock is what counts
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("ascii"), 0)


def _message(path: Path, pid: int | None) -> str:
    who, how = (
        (f"pid {pid}", f"Ctrl-C where it runs, or kill {pid}")
        if pid
        else ("starting", "Ctrl-C where it runs")
    )
    return (
        f"`listgate up` is already running on the data dir {path.parent.parent.resolve()} "
        f"({who}): stop it first ({how}), "
        "or set LISTGATE_DATA_DIR to another directory to run a second site"
    )


def _cannot_lock(path: Path, exc: OSError) -> None:
    log.warning(
        "cannot lock %s (%s): a second `listgate up` of this data dir would not be refused",
        path,
        exc.strerror or exc,
    )
