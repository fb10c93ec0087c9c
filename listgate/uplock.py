"""One `listgate up` per data directory: a lock on run/up.lock, held for as long as `up` or any
of its services runs.

The lock is the kernel's (flock): it goes with the last process holding it however that ends,
kill -9 included, so a killed supervisor never leaves a stale lock behind. The services inherit
it, so after a kill -9 of `up` the lock stays held while they stop (the kernel sends them
SIGTERM): a new `up` waits for them, a moment, instead of meeting their ports still taken or
running its services beside theirs. The holder writes its pid in the file for the message a
second `up` prints, with its start time: pids come round again (only 32768 of them on many
systems), and the pid of a killed `up` taken by a new process must not look like that `up`
alive. Whether an `up` runs is asked of the lock alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("listgate.up")

# How long a starting `up` retries a taken lock: a `listgate status` holds it only for a moment.
RETRY_SECONDS = 1.0
# How long a starting `up` waits for the services of a killed `up` to stop (they got SIGTERM):
# the grace `up` itself gives its services when it stops them.
STOP_WAIT_SECONDS = 15.0


class AlreadyRunning(Exception):
    """Another `listgate up` holds the data dir; the message names it, its pid, how to stop it."""


def lock_file(data_dir: Path) -> Path:
    """The lock `listgate up` holds while it runs (beside its state file and readiness socket)."""
    return data_dir / "run" / "up.lock"


@contextlib.contextmanager
def hold(data_dir: Path, echo: Callable[[str], None] = log.info) -> Iterator[int | None]:
    """Hold data_dir's lock while the block runs; AlreadyRunning when another `up` holds it.

    Yields the lock's descriptor, for the services to inherit (None without a lock). While the
    services of a killed `up` hold it, waits for them (saying so with echo) STOP_WAIT_SECONDS
    at most. Where no lock can be made (a read-only data dir, a file system without locks) `up`
    still runs, with a warning: refusing to serve would be worse than not refusing a second `up`.
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
        locked = fd >= 0 and _lock(fd, path, echo)
        if locked:
            _write_pid(fd, f"{os.getpid()} {start_time(os.getpid()) or ''}".strip() + "\n")
        yield fd if locked else None
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


def _lock(fd: int, path: Path, echo: Callable[[str], None]) -> bool:
    """Take the lock, waiting RETRY_SECONDS for a passing probe, STOP_WAIT_SECONDS for the
    services of a killed `up`; False where locks do not work.
    """
    deadline = time.monotonic() + RETRY_SECONDS
    killed = None  # the pid of the killed `up` whose services are awaited
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            (holder, started), now = _holder(fd), time.monotonic()
            if holder is not None and holder != killed and not alive(holder, started):
                killed, deadline = holder, now + STOP_WAIT_SECONDS
                reused = ", a number another process has taken since" if alive(holder) else ""
                echo(
                    f"waiting for the services of the killed `listgate up` (pid {holder}{reused}) "
                    f"to stop (at most {STOP_WAIT_SECONDS:.0f}s) ..."
                )
            elif now >= deadline:
                message = _still_running(path, holder) if holder == killed else None
                raise AlreadyRunning(message or _message(path, holder)) from None
            time.sleep(0.05)
        except OSError as exc:
            _cannot_lock(path, exc)
            return False


def start_time(pid: int) -> str | None:
    """When pid started (clock ticks after boot, from /proc), None where /proc does not tell."""
    try:
        return _stat(pid)[19]  # field 22 of proc_pid_stat(5); the first after ")" is field 3
    except (OSError, IndexError):
        return None


def alive(pid: int, started: str | None = None) -> bool:
    """Whether pid runs and, given `started` (its start_time()), is still that process.

    A killed process not yet reaped by its parent counts as gone.
    """
    try:
        fields = _stat(pid)
        return fields[0] not in "ZX" and started in (None, fields[19])
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass  # someone else's process
        return True


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and ")")."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _holders(path: Path) -> list[str]:
    """'pid N (command)' of each other process with the lock file open, where /proc tells."""
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        if fd_dir.parent.name == str(os.getpid()):
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == str(path) for fd in fd_dir.iterdir()):
                words = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ").split()
                # on one line (a `python -c` script has several), and short
                command = b" ".join(words).decode(errors="replace")
                command = command if len(command) <= 60 else command[:57] + "..."
                found.append(f"pid {fd_dir.parent.name} ({command})")
    return found


def _holder(fd: int) -> tuple[int | None, str | None]:
    """The pid and start time the holder wrote in the lock file (None if it has not yet).

    An `up` older than the start time wrote its pid alone: (pid, None).
    """
    words = os.pread(fd, 64, 0).decode("ascii", "replace").split()
    if not words or not words[0].isdigit():
        return None, None
    return int(words[0]), words[1] if len(words) > 1 and words[1].isdigit() else None


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


def _still_running(path: Path, killed: int | None) -> str | None:
    """The error when the services of a killed `up` did not stop in time (None if none is seen)."""
    holders = _holders(path.resolve())
    if not holders:
        return None
    pids = " ".join(h.split()[1] for h in holders)
    return (
        f"the services of the killed `listgate up` (pid {killed}) on the data dir "
        f"{path.parent.parent.resolve()} did not stop within {STOP_WAIT_SECONDS:.0f}s: "
        f"{', '.join(holders)}; stop them (kill {pids}, or kill -9 {pids} if they hang) "
        "and start `listgate up` again"
    )


def _cannot_lock(path: Path, exc: OSError) -> None:
    log.warning(
        "cannot lock %s (%s): a second `listgate up` of this data dir would not be refused",
        path,
        exc.strerror or exc,
    )
