"""The archiver stage's CPU priority, below the listener's (LISTGATE_ARCHIVER_NICE).

The archiver runs behind the listener: under a burst the 250s come first, the spool grows, and
the archive catches up on the CPU the listener leaves. Only a process of its own is lowered: a
lowered thread beside the listener's would hold the GIL while the scheduler passes it over, and
the listener would wait for it.

On PostgreSQL much of archiving is the server's work for the archiver (its statements, the
search index's triggers), done by the server process serving its connection. When that process
runs on this host and may be lowered by this user (the same user, or root), it is lowered too:
otherwise it competes with the listener (and with the listener's own server process) at full
priority, and the archiver's lower priority holds for only part of its work. A server elsewhere,
or one this user may not lower, is left as it is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def yield_cpu(nice: int, engine: Engine) -> None:
    """Lower this process's CPU priority by nice (before its threads start: they inherit it), and
    that of each server process serving engine's connections on this host (PostgreSQL)."""
    if not nice:
        return
    log.debug("archiver CPU priority lowered by %d (LISTGATE_ARCHIVER_NICE)", nice)
    os.nice(nice)
    if engine.dialect.name != "postgresql":
        return
    lowered = os.getpriority(os.PRIO_PROCESS, 0)

    def lower(dbapi_connection: Any, _record: Any) -> None:
        lower_server_process(dbapi_connection, lowered)

    event.listen(engine, "connect", lower)
    engine.dispose()  # a connection opened before (the schema's check) is opened again, lowered


def lower_server_process(connection: Any, nice: int) -> bool:
    """Set the nice value of the server process serving this psycopg connection to at least
    nice, when it runs on this host and this user may: whether it was lowered."""
    info = connection.info
    host = info.host or ""
    if not (host.startswith("/") or host in LOCAL_HOSTS):  # another host: its own business
        return False
    pid = info.backend_pid
    try:
        # a server in another PID namespace (a container) has a number that is not its own here
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return False
        if os.getpriority(os.PRIO_PROCESS, pid) < nice:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as exc:  # not permitted (another user's), or gone
        log.debug("the server process %s keeps its CPU priority: %s", pid, exc)
        return False
    return True
