"""Settings and LISTGATE_* environments for a test: everything under its tmp_path, on free ports."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.schema import upgrade

ROOT = Path(__file__).resolve().parents[2]
# small real mails kept with the tests (their sources and licences are noted beside them)
DATA = ROOT / "tests" / "data"
DOMAIN = "lists.test"
T = TypeVar("T")
SECRET_KEY = "test-secret-key-0123456789"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def far_from_now() -> str:
    """A time of day (UTC, HH:MM) twelve hours away: the beat's daily tasks never run in a test."""
    return (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """LISTGATE_* variables for one test: data under tmp_path/var, SMTP and web on free ports.

    The beat's digests and reminders are set twelve hours away: a test's processes see them
    only when it sends them itself, whatever the time of day it runs at.
    """
    away = far_from_now()
    env = {
        "LISTGATE_DIGEST_TIME": away,
        "LISTGATE_REMINDER_TIME": away,
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_DOMAIN": DOMAIN,
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_SECRET_KEY": SECRET_KEY,
    }
    env.update(extra)
    return env


def make_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings for a test: everything under tmp_path, on free ports."""
    return Settings.from_env(env_for(tmp_path, **env))


def site_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a test's processes: env_for(), the embedded broker's file in tmp_path."""
    broker = f"sqla+sqlite:///{tmp_path / 'var' / 'broker.sqlite3'}"
    return env_for(tmp_path, **{"LISTGATE_BROKER_URL": broker, **extra})


ENGINES: list[Engine] = []  # made by migrated(), disposed by tests/conftest.py (dispose_engines)
# This process's migrated SQLite database: the first new SQLite database is migrated here, the
# next ones start as a copy of it (a file copy instead of every migration again; PostgreSQL's
# tests do the same with a template database). Set by tests/conftest.py for the session.
TEMPLATE: list[Path] = []


def from_template(settings: Settings) -> None:
    """Start a SQLite database that does not exist yet as a copy of this process's migrated one.

    The copy is migrated to head as any database is (nothing to do then). PostgreSQL databases
    and SQLite databases that already exist are left as they are.
    """
    if not settings.is_sqlite or not TEMPLATE:
        return
    target = Path(make_url(settings.database_url).database or "")
    if not target.name or target.exists():
        return
    template = TEMPLATE[0]
    if not template.exists():
        engine = make_engine(make_settings(template.parent))
        upgrade(engine)
        engine.dispose()  # its last connection closed: the write-ahead log is in the file, gone
        built = template.parent / "var" / "listgate.sqlite3"
        assert not built.with_name(built.name + "-wal").exists(), built
        # as a database just migrated, before any engine closed on it: no statistics yet (the
        # engine's upkeep at dispose, PRAGMA optimize, may have written them)
        with contextlib.closing(sqlite3.connect(built)) as conn, conn:
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_schema WHERE name LIKE 'sqlite\\_stat%' ESCAPE '\\'"
            ).fetchall():
                conn.execute(f"DROP TABLE {name}")
        built.rename(template)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


def migrated(settings: Settings) -> sessionmaker[Session]:
    """Create or migrate the database of settings; a session factory that writes to it.

    Its engine is disposed after the test that made it (or at the end of the session, for a
    module's fixture), not left to the garbage collector with its pooled connections open.
    """
    from_template(settings)
    engine = make_engine(settings)
    ENGINES.append(engine)
    upgrade(engine)
    return session_factory(writer(engine))


def dispose_engines(keep: int = 0) -> None:
    """Dispose the engines migrated() made, all but the first `keep`, newest first."""
    while len(ENGINES) > keep:
        ENGINES.pop().dispose()


def prepare(env: dict[str, str], *list_names: str) -> tuple[Settings, sessionmaker[Session]]:
    """Migrate the database named by env and create the lists; settings and a writer factory."""
    settings = Settings.from_env(env)
    db = migrated(settings)
    with transaction(db) as session:
        for name in list_names:
            if lists.get(session, name) is None:
                lists.create(session, name)
    return settings, db


def search(pattern: str | re.Pattern[str], text: str, group: int = 1) -> str:
    """The group of pattern's first match in text; an AssertionError naming the pattern if none."""
    found = re.search(pattern, text)
    assert found is not None, f"no {pattern!r} in {text[:2000]!r}"
    return found.group(group)


def wait_until(check: Callable[[], T | None], timeout: float = 60.0, what: str = "condition") -> T:
    """Poll check() until truthy and return its value; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
