"""Shared fixtures: a migrated SQLite database per test, free ports, an SMTP sink, services.

Services (PostgreSQL, Redis, Chromium) come from tests/services.py: with CI=true a missing
service fails the test; locally it skips with a one-line reason.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import MailingList
from listgate.schema import upgrade
from tests.services import (  # noqa: F401 - fixtures re-exported for every test
    SERVICE_MARKERS,
    chromium_path,
    postgres_db,
    postgres_url,
    redis_db_url,
    redis_url,
    require,
)
from tests.sink import SmtpSink

if TYPE_CHECKING:
    from flask import Flask

DATA = Path(__file__).resolve().parent / "data"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings for a test: everything under tmp_path, on free ports."""
    base = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
    }
    base.update(env)
    return Settings.from_env(base)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings in a temporary data dir."""
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """A migrated database for this test."""
    eng = make_engine(settings)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose transactions write (BEGIN IMMEDIATE on SQLite)."""
    return session_factory(writer(engine))


@pytest.fixture
def make_list(db: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    """Create a list: make_list("dev", policy="members")."""

    def make(name: str = "dev", **kwargs: object) -> MailingList:
        with transaction(db) as session:
            return lists.create(session, name, **kwargs)  # type: ignore[arg-type]

    return make


def _running_sink() -> Iterator[SmtpSink]:
    s = SmtpSink(port=free_port())
    s.start()
    yield s
    s.stop()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real aiosmtpd server on loopback that keeps what it receives."""
    yield from _running_sink()


@pytest.fixture(scope="module")
def msink() -> Iterator[SmtpSink]:
    """One such server for all the tests of a module (they clear it between tests as they need)."""
    yield from _running_sink()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the services they use, so `-m "not postgres"` etc. select them."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in names:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_db: str) -> Settings:
    """Settings on a fresh migrated PostgreSQL database (embedded broker)."""
    return make_settings(tmp_path, LISTGATE_DATABASE_URL=postgres_db)


@pytest.fixture
def pg_web(pg_settings: Settings) -> Iterator[tuple[Flask, sessionmaker[Session]]]:
    """The web archive on a fresh PostgreSQL database, and a session factory that writes to it."""
    from webarchive import create_app

    engine = make_engine(pg_settings)
    app = create_app(pg_settings)
    yield app, session_factory(writer(engine))
    app.extensions["listgate"].engine.dispose()
    engine.dispose()


@pytest.fixture
def prod_settings(tmp_path: Path, postgres_db: str, redis_db_url: str) -> Settings:
    """The production configuration: PostgreSQL database and Redis broker."""
    return make_settings(tmp_path, LISTGATE_DATABASE_URL=postgres_db, LISTGATE_BROKER_URL=redis_db_url)
