"""The spool's append, the 250's promise, on both databases: a batch is one INSERT, all of its rows
committed when append returns, none of them when one row fails; the appends go on the driver's
cursor of a pooled connection (no SQLAlchemy statement execution) and leave the engine's other
transactions as they were (PostgreSQL: the autocommit of the append does not stay)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from listgate.config import Settings
from listgate.db import look_ups, make_engine
from listgate.schema import upgrade
from listgate.spool import ROW_COLUMNS, Spool, Spooled
from tests.support.spool_faults import hook_appends


@pytest.fixture(params=["sqlite", "postgresql"])
def spool(request: pytest.FixtureRequest, settings: Settings) -> Iterator[tuple[Spool, Engine]]:
    chosen = settings if request.param == "sqlite" else request.getfixturevalue("pg_settings")
    engine = make_engine(chosen)
    upgrade(engine)
    spool = Spool(engine)
    yield spool, engine
    spool.close()
    engine.dispose()


def _mail(n: int) -> Spooled:
    raw = f"From: a@example.org\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode()
    return Spooled(raw, "a@example.org", ("dev@lists.test",), f"{n}@x", (("received", "", 1),))


def _spooled_ids(spool: Spool) -> list[str]:
    with spool.reader.connect() as conn:  # a connection of its own: sees committed rows only
        return list(
            conn.execute(select(spool.table.c.message_id).order_by(spool.table.c.id)).scalars()
        )


def test_a_batch_is_one_insert_on_one_pooled_connection_committed_when_append_returns(
    spool: tuple[Spool, Engine],
) -> None:
    """What a batch costs beyond its durable write: one check-out from the engine's pool and one
    INSERT statement on the driver's cursor, no statement executed through SQLAlchemy (its
    execution and its `begin` event cost more than the INSERT and its commit on SQLite)."""
    appender, _engine = spool
    appender.append([_mail(0)])  # the pool's first connection is opened
    through_sqlalchemy: list[str] = []
    checkouts: list[object] = []
    inserts: list[int] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        through_sqlalchemy.append(statement)

    def out(*_: Any) -> None:
        checkouts.append(1)

    def driver(_driver: Any, sql: str, rows: Any) -> None:
        if sql.startswith("INSERT"):
            # PostgreSQL: one VALUES row of parameters per spool row; SQLite: executemany's rows
            inserts.append(len(rows) // len(ROW_COLUMNS) if appender.postgresql else len(rows))

    event.listen(appender.engine, "before_cursor_execute", seen)
    event.listen(appender.engine.pool, "checkout", out)
    hook_appends(appender, driver)
    try:
        appender.append([_mail(n) for n in range(1, 41)])
    finally:
        event.remove(appender.engine, "before_cursor_execute", seen)
        event.remove(appender.engine.pool, "checkout", out)
    assert (through_sqlalchemy, len(checkouts), inserts) == ([], 1, [40])
    assert _spooled_ids(appender) == [f"{n}@x" for n in range(41)]


def test_a_batch_with_a_row_the_database_refuses_leaves_none_of_its_rows(
    spool: tuple[Spool, Engine],
) -> None:
    appender, _engine = spool
    appender.append([_mail(1)])
    no_raw: bytes = None  # type: ignore[assignment]  # NULL on purpose: the row the database refuses
    broken = Spooled(no_raw, "b@example.org", ("dev@lists.test",), "broken@x")
    with pytest.raises(Exception, match=r"(?i)null"):
        appender.append([_mail(2), broken, _mail(3)])
    assert _spooled_ids(appender) == ["1@x"]  # no 250 was owed for 2 and 3: they are not there
    appender.append([_mail(4)])
    assert _spooled_ids(appender) == ["1@x", "4@x"]


def test_the_engines_other_transactions_still_roll_back_after_appends(
    spool: tuple[Spool, Engine],
) -> None:
    appender, _engine = spool
    for n in range(5):  # the pool's connections have all been the append's
        appender.append([_mail(n)])

    def undone() -> None:
        with appender.engine.begin() as conn:
            conn.execute(appender.table.insert(), [_row(99)])
            raise RuntimeError("undo")

    with pytest.raises(RuntimeError):
        undone()
    assert "99@x" not in _spooled_ids(appender)


def _row(n: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "received_at": datetime.now(UTC),
        "mail_from": "a@example.org",
        "rcpt_tos": "dev@lists.test",
        "message_id": f"{n}@x",
        "counts": "",
        "raw": b"x",
        "state": "pending",
        "reason": "",
    }


def test_an_append_on_a_connection_pinged_at_check_out_is_committed(
    spool: tuple[Spool, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection idle a while is pinged when checked out (listgate.db; on PostgreSQL
    the ping's SELECT opens a transaction): the append on it still commits, on its own."""
    from listgate import db as dbmod

    appender, _engine = spool
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE", 0.0)  # every check-out pings
    for n in range(3):
        appender.append([_mail(n)])
    assert _spooled_ids(appender) == ["0@x", "1@x", "2@x"]


def _appended_on_look_ups(pg_settings: Settings, raw: bytes) -> tuple[str | None, int]:
    """Append one post as the gateway does on PostgreSQL (on a connection of the look-ups' engine);
    how the server stored its bytes: (compression, stored size)."""
    engine = make_engine(pg_settings)
    upgrade(engine)
    spool = Spool(engine)
    try:
        mail = Spooled(raw, "a@example.org", ("dev@lists.test",), "big@x", (("received", "", 1),))
        with look_ups(engine).connect() as conn:
            spool.append([mail], conn.connection)
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                "SELECT pg_column_compression(raw), pg_column_size(raw), raw FROM spool"
            ).one()
        assert found[2] == raw  # the exact bytes, whatever the compression
        return found[0], int(found[1])
    finally:
        spool.close()
        engine.dispose()


_BIG = b"From: a@example.org\r\nMessage-ID: <big@x>\r\n\r\n" + b"the same line again\r\n" * 400


def test_the_gateways_appends_compress_a_posts_bytes_with_lz4_on_postgresql(
    pg_settings: Settings,
) -> None:
    """The spool's rows are the look-ups' connections' only writes, and live until the archiver
    takes them: their bytes (over the server's 2 KB TOAST threshold) are compressed with lz4,
    cheaper for the server than its default pglz."""
    compression, size = _appended_on_look_ups(pg_settings, _BIG)
    assert (compression, size < len(_BIG)) == ("lz4", True)


def test_a_server_that_refuses_lz4_keeps_its_own_compression_and_takes_the_append(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server built without lz4 refuses the setting: the look-ups' connection still works, and
    the post is stored as the server's default compresses it."""
    from listgate import db as dbmod

    monkeypatch.setattr(dbmod, "LZ4", "SET default_toast_compression = no_such_method")
    compression, _size = _appended_on_look_ups(pg_settings, _BIG)
    assert compression == "pglz"
