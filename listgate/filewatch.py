"""Tell, at the cost of one PRAGMA, whether a SQLite file changed: idle pollers look only then.

The archiver polls the spool file and the worker the embedded broker's file, many times a
second; most polls find nothing. Each records what it found empty at which version of the file;
a later poll that reads the same version skips its look (and its statements, and for the broker
its write lock), though never for longer than REREAD_SECONDS (a file replaced under the poller
would never change).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Hashable
from pathlib import Path
from urllib.parse import quote

from listgate.db import sqlite_cannot_write

REREAD_SECONDS = 1.0


class FileWatch:
    """PRAGMA data_version of a SQLite file, on a connection of its own that never writes.

    The number changes whenever another connection (of this process or another) commits to the
    file. It is read before the poller's own look, so a commit between the two changes it for
    the next poll. None when it cannot be read (no file yet, a path that is no file): then look.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self._conn: sqlite3.Connection | None = None
        self._empty: dict[Hashable, tuple[int, float]] = {}  # what -> (version, when) found empty

    def version(self) -> int | None:
        try:
            if self._conn is None:
                self._conn = self._open()
            return (
                None
                if self._conn is None
                else int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            )
        except sqlite3.Error:
            return None

    def _open(self) -> sqlite3.Connection | None:
        """The watching connection; None while it could not write (then: look, and try again).

        It stays open, so it must be one that can write: SQLite shares one WAL index (-shm) per
        file among a process's connections, and one opened while the files were read-only
        would keep the process's writers (the listener's appends beside an archiver, the
        worker's broker) read-only for as long as it stays open (listgate.db)."""
        conn = sqlite3.connect(
            f"file:{quote(str(self.path))}?mode=rw", uri=True, timeout=30, check_same_thread=False
        )
        if sqlite_cannot_write(conn):
            conn.close()
            return None
        return conn

    def still_empty(self, what: Hashable) -> tuple[bool, int | None]:
        """(True when what was found empty at the file's version now, less than REREAD_SECONDS
        ago: no need to look), the version now (for found_empty, after the look)."""
        version, seen = self.version(), self._empty.get(what)
        quiet = (
            version is not None
            and seen is not None
            and seen[0] == version
            and time.monotonic() < seen[1] + REREAD_SECONDS
        )
        return quiet, version

    def found_empty(self, what: Hashable, version: int | None) -> None:
        """The look at version (still_empty's) found nothing; None: found something, or not
        known to be empty."""
        if version is None:
            self._empty.pop(what, None)
        else:
            self._empty[what] = (version, time.monotonic())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
