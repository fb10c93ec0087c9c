"""Shared fixtures: a migrated SQLite (or PostgreSQL) database per test and the test's settings.

The helpers the test folders share are the package tests/support/; the fixtures of its modules
are registered here for every folder (services, sink, gateway, web, browser). Services
(PostgreSQL, Redis, Chromium) come from tests/support/services.py: with CI=true a missing
service fails the test; locally it skips with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import MailingList
from listgate.schema import upgrade
from tests.support.config import ENGINES, TEMPLATE, dispose_engines, from_template, make_settings
from tests.support.factories import ListOptions, MakeList

if TYPE_CHECKING:
    from flask import Flask

    from tests.support.services import RedisServer

pytest_plugins = [
    "tests.support.reaper",  # first: the processes the others start die with the run
    "tests.support.temproot",  # this checkout's own base temp
    "tests.support.longfirst",  # the tests marked long run first, spread over the workers
    "tests.support.services",
    "tests.support.sink",
    "tests.support.gateway",
    "tests.support.web",
    "tests.support.browser",
]


@pytest.fixture(autouse=True)
def _engines_disposed() -> Iterator[None]:
    """After each test, dispose the engines its migrated() and prepare() made.

    A pooled PostgreSQL connection left to the garbage collector is a ResourceWarning, an error
    in whichever later test the collector happens to run.
    """
    keep = len(ENGINES)  # a module's fixtures made theirs before: disposed at the session's end
    yield
    dispose_engines(keep)


@pytest.fixture(scope="session", autouse=True)
def _all_engines_disposed() -> Iterator[None]:
    """At the end of the session, dispose the engines the modules' fixtures made."""
    yield
    dispose_engines()


@pytest.fixture(scope="session", autouse=True)
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where this process keeps its migrated SQLite database (made at first use)."""
    TEMPLATE[:] = [tmp_path_factory.mktemp("template") / "listgate.sqlite3"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings in a temporary data dir."""
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """A migrated database for this test."""
    from_template(settings)
    eng = make_engine(settings)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose transactions write (BEGIN IMMEDIATE on SQLite)."""
    return session_factory(writer(engine))


@pytest.fixture
def make_list(db: sessionmaker[Session]) -> MakeList:
    """Create a list: make_list("dev", policy="members")."""

    def make(name: str = "dev", **kwargs: Unpack[ListOptions]) -> MailingList:
        with transaction(db) as session:
            return lists.create(session, name, **kwargs)

    return make


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_db: str) -> Settings:
    """Settings on a fresh migrated PostgreSQL database (embedded broker)."""
    return make_settings(tmp_path, LISTGATE_DATABASE_URL=postgres_db)


@pytest.fixture
def pg_db(pg_settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory that writes to the fresh PostgreSQL database of pg_settings."""
    engine = make_engine(pg_settings)
    yield session_factory(writer(engine))
    engine.dispose()


@pytest.fixture
def pg_web(
    pg_settings: Settings, pg_db: sessionmaker[Session]
) -> Iterator[tuple[Flask, sessionmaker[Session]]]:
    """The web archive on a fresh PostgreSQL database, and a session factory that writes to it."""
    from webarchive import create_app

    app = create_app(pg_settings)
    yield app, pg_db
    app.extensions["listgate"].engine.dispose()


@pytest.fixture
def prod_settings(tmp_path: Path, postgres_db: str, redis_db_url: str) -> Settings:
    """The production configuration: PostgreSQL database and Redis broker."""
    return make_settings(
        tmp_path, LISTGATE_DATABASE_URL=postgres_db, LISTGATE_BROKER_URL=redis_db_url
    )


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server this test may stop and start again (on the same port)."""
    from tests.support.services import RedisServer, require  # after pytest's assertion rewriting

    server = RedisServer()
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        require("Redis", str(exc))
    yield server
    server.stop()
