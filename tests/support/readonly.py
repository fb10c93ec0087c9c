"""The read-only fault tests' tools: file modes that bind even root, load that opens connections."""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.services import require

DROP_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def unprivileged() -> list[str]:
    """A command prefix under which file permissions bind a process (root keeps its uid only)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        require(
            "setpriv",
            "running as root, and util-linux's setpriv is needed to drop CAP_DAC_OVERRIDE",
        )
    return DROP_OVERRIDE


def chmod_databases(data_dir: Path, mode: int) -> None:
    """Set the mode of the archive, the spool file beside it and their -wal and -shm files."""
    for path in data_dir.glob("listgate*.sqlite3*"):
        path.chmod(mode)


WRITE_ONCE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    db.execute("BEGIN IMMEDIATE")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.execute(f"PRAGMA user_version = {version}")  # a write that changes nothing
    db.execute("ROLLBACK")
except sqlite3.OperationalError as exc:
    sys.exit(str(exc))
"""


def refuses_new_writers(data_dir: Path) -> bool:
    """Whether a connection opened now, by a process the file modes bind, cannot write to the
    archive: the read-only period is real, whatever the processes under test happen to do."""
    done = subprocess.run(
        [*unprivileged(), sys.executable, "-c", WRITE_ONCE, str(data_dir / "listgate.sqlite3")],
        capture_output=True,
        text=True,
        check=False,  # the exit status is the answer
    )
    return done.returncode != 0 and "readonly" in done.stderr


PROBE_SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def probe(port: int, source: str, stop: threading.Event) -> None:
    """RCPT to lists that do not exist, again and again: each is a database read in the gateway."""
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as c:
                c.ehlo()
                c.mail("probe@example.org")
                for i in range(20):
                    c.rcpt(f"nolist{i}@lists.test")
                c.rset()
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)


def probes(port: int, stop: threading.Event, count: int = 12) -> list[threading.Thread]:
    """RCPT probes from `count` connections until stop is set (not started): the gateway opens
    new database connections for them, some while the files are read-only."""
    return [
        threading.Thread(target=probe, args=(port, PROBE_SOURCES[i % 3], stop), daemon=True)
        for i in range(count)
    ]
