"""What every task needs, built once per worker process (lazily, so it is safe across fork)."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch
from listgate.config import Settings
from listgate.db import make_engine, session_factory, writer
from listgate.models import OutboxEntry
from worker.dmarc import DmarcPolicy, TxtResolver
from worker.resolver import Resolver
from worker.signing import Signer

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """Settings plus a lazily created engine, the DMARC cache and a task sender."""

    settings: Settings
    sender: Any = None  # a Celery app (send_task); None in unit tests
    resolver: TxtResolver | None = None
    _engine: Engine | None = field(default=None, repr=False)
    _db: sessionmaker[Session] | None = field(default=None, repr=False)
    _pid: int = 0
    _writer: Engine | None = field(default=None, repr=False)
    _writer_pid: int = 0
    _dmarc: DmarcPolicy | None = field(default=None, repr=False)
    _dns: Resolver | None = field(default=None, repr=False)
    _signer: Signer | None = field(default=None, repr=False)

    @property
    def db(self) -> sessionmaker[Session]:
        """A writer session factory for this process (a forked child gets its own engine)."""
        if self._db is None or self._pid != os.getpid():
            self._engine = make_engine(self.settings)
            self._db = session_factory(writer(self._engine))
            self._pid = os.getpid()
        return self._db

    @property
    def writer(self) -> Engine:
        """This process's engine, taking the write lock at BEGIN (for small Core updates)."""
        self.db  # noqa: B018 - creates the engine for this process when needed
        if self._writer is None or self._writer_pid != self._pid:
            assert self._engine is not None
            self._writer, self._writer_pid = writer(self._engine), self._pid
        return self._writer

    @property
    def dmarc(self) -> DmarcPolicy:
        """The cached DMARC policy lookup."""
        if self._dmarc is None:
            self._dmarc = DmarcPolicy(
                self.settings.dmarc_always_domains, self.resolver or self.dns.txt
            )
        return self._dmarc

    @property
    def dns(self) -> Resolver:
        """The cached TXT resolver (LISTGATE_DNS_SERVER, LISTGATE_DNS_TIMEOUT)."""
        if self._dns is None:
            self._dns = Resolver(self.settings.dns_server, float(self.settings.dns_timeout))
        return self._dns

    @property
    def signer(self) -> Signer:
        """DKIM signing of generated mail and ARC sealing of copies (no-ops without keys)."""
        if self._signer is None:
            self._signer = Signer(self.settings, self.dns)
        return self._signer

    def warm(self) -> None:
        """Build this process's engine and load the DNS resolver now, not during the first fan-out.

        No connection is opened: a database that is down must not stall the pool's start.
        """
        self.writer  # noqa: B018 - builds the engines for this process
        importlib.import_module("dns.resolver")

    def enqueue(self, entries: list[OutboxEntry]) -> None:
        """Send committed outbox entries; the sweeper covers a broker failure."""
        dispatch.enqueue(self.sender, entries)

    def dispose(self) -> None:
        """Close this process's connections (a forked child leaves its parent's to the parent)."""
        if self._engine is not None:
            self._engine.dispose(close=self._pid == os.getpid())
        self._engine = self._db = self._writer = None
