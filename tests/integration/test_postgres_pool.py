"""PostgreSQL connections the pool hands out: one cut while it sat idle is replaced unseen; one cut
while in steady use fails its next statement once (a disconnect), and the pool starts afresh."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from listgate import db
from listgate.config import Settings
from listgate.db import make_engine


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _cut(pg_settings: Settings, pid: int) -> None:
    """End a server process from another session, as a restart or a proxy's timeout would."""
    other = make_engine(pg_settings)
    try:
        with other.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar_one()
    finally:
        other.dispose()


def test_a_connection_cut_while_idle_is_replaced_before_use(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.2)
    engine = make_engine(pg_settings)
    try:
        first = _backend(engine)
        _cut(pg_settings, first)
        time.sleep(0.3)  # idle longer than PING_AFTER_IDLE: pinged at checkout, found dead
        assert _backend(engine) != first  # no error reached the caller
    finally:
        engine.dispose()


def test_a_connection_cut_while_in_steady_use_fails_once_then_the_pool_recovers(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 60.0)
    engine = make_engine(pg_settings)
    try:
        first = _backend(engine)
        _cut(pg_settings, first)
        with pytest.raises(DBAPIError) as failed:
            _backend(engine)  # reused at once: not pinged (the gateway answers this batch 451)
        assert failed.value.connection_invalidated
        assert _backend(engine) != first
    finally:
        engine.dispose()
