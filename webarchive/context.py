"""Per-app resources (settings, engine, sessions, the broker client), the per-request database
session, the answers a process remembers between requests, and handing generated mail to the
worker."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from flask import Flask, current_app, g
from sqlalchemy import Engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from listgate import dispatch, store
from listgate.config import Settings
from listgate.db import make_engine, session_factory, writer
from listgate.models import MailingList, OutboxEntry
from listgate.sender import celery_client

MMAP_BYTES = 1 << 30  # address space only; the OS page cache holds the data
CACHE_KIB = 16_384  # per connection
REMEMBERED = 4096  # answers of one kind a process keeps (all forgotten when full)
T = TypeVar("T")


@dataclass
class Resources:
    """What one app instance shares between requests."""

    settings: Settings
    engine: Engine
    reader: sessionmaker[Session]
    writer: sessionmaker[Session]
    extra: dict[str, Any] = field(default_factory=dict)
    _sender: Any = None

    @property
    def sender(self) -> Any:
        """A Celery client that only sends tasks by name (made on first use; tests replace it)."""
        if self._sender is None:
            self._sender = celery_client(self.settings, "webarchive")
        return self._sender

    @sender.setter
    def sender(self, value: Any) -> None:
        self._sender = value


def init_app(app: Flask, settings: Settings) -> None:
    """Create the engine and session factories and close the request session at teardown."""
    engine = make_engine(settings)
    if store.of(engine).sqlite:
        event.listen(engine, "connect", _reader_pragmas)
    app.extensions["listgate"] = Resources(
        settings=settings,
        engine=engine,
        reader=session_factory(engine),
        writer=session_factory(writer(engine)),
    )
    app.teardown_appcontext(_close_session)


def _reader_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """Pages read much and write little: map the file and keep more pages per connection.

    A post's status and date come after its body in the row, so a listing or a search reads
    the body's overflow pages: mapped, they cost no read() each.
    """
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cur.close()


def resources() -> Resources:
    """The current app's resources."""
    return current_app.extensions["listgate"]


def settings() -> Settings:
    """The current app's settings."""
    return resources().settings


def db(write: bool = False) -> Session:
    """The request's session; write=True gives one that takes the SQLite write lock on BEGIN."""
    session: Session | None = g.get("_db")
    if session is not None and (not write or g.get("_db_write")):
        return session
    if session is not None:
        session.close()
    res = resources()
    g._db = (res.writer if write else res.reader)()
    g._db_write = write
    return g._db


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("_db", None)
    g.pop("_db_write", None)
    if session is not None:
        session.close()


def remembered(kind: str, identity: Hashable, version: Hashable, make: Callable[[], T]) -> T:
    """The answer about identity this process made at this version, else make() kept instead.

    The one rule for every remembered answer: it is stale as soon as its version differs from
    the one its caller reads now. One answer per identity, so a stale one is replaced, not kept.
    """
    cache: dict[Hashable, tuple[Hashable, T]] = resources().extra.setdefault(kind, {})
    found = cache.get(identity)
    if found is not None and found[0] == version:
        return found[1]
    value = make()
    if identity not in cache and len(cache) >= REMEMBERED:
        cache.clear()
    cache[identity] = (version, value)
    return value


def list_version(mlist: MailingList) -> tuple[int, datetime, int]:
    """What moves with every change to what the list's archive shows (conversations.changed):
    answers about its posts and threads last while it stays. created_at tells a list made again
    under a reused id from the one deleted."""
    return mlist.id, mlist.created_at, mlist.changes


def enqueue(entries: list[OutboxEntry]) -> None:
    """Send committed outbox entries by task name; if the broker is down, the sweeper resends."""
    if entries:
        dispatch.enqueue(resources().sender, entries)
