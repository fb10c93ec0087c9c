"""Which server processes the archiver lowers with itself (gateway.priority): only a
PostgreSQL server process on this host, never another process that happens to have its number."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gateway.priority import lower_server_process


@dataclass
class _Info:
    host: str
    backend_pid: int


@dataclass
class _Connection:
    info: _Info


def test_a_server_on_another_host_is_left_alone() -> None:
    own = os.getpriority(os.PRIO_PROCESS, os.getpid())
    # the number is this process's: were it taken for the server's, this process would be lowered
    assert not lower_server_process(_Connection(_Info("db.example.org", os.getpid())), own + 5)
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == own


def test_a_local_number_that_is_not_a_postgresql_server_is_left_alone() -> None:
    """A server in a container (another PID namespace) reports a number that here names some
    other process: only a process named postgres is lowered."""
    own = os.getpriority(os.PRIO_PROCESS, os.getpid())
    for host in ("127.0.0.1", "/var/run/postgresql"):
        assert not lower_server_process(_Connection(_Info(host, os.getpid())), own + 5)
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == own
