"""Faults in the spool's appends, which go on the driver's own cursor (Spool.write_rows), where
SQLAlchemy's statement events do not see them: a hook before each statement of that cursor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from listgate.spool import Spool

# Called with the driver connection, the SQL ("BEGIN IMMEDIATE", the INSERT, "COMMIT") and the
# rows of an executemany (None for execute); it may raise to fail that statement.
Hook = Callable[[Any, str, Any], None]


class _Cursor:
    def __init__(self, cursor: Any, driver: Any, hook: Hook) -> None:
        self.cursor, self.driver, self.hook = cursor, driver, hook

    def execute(self, sql: str, *args: Any) -> Any:
        self.hook(self.driver, sql, args[0] if args and "INSERT" in sql else None)
        return self.cursor.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        self.hook(self.driver, sql, rows)
        return self.cursor.executemany(sql, rows)

    def close(self) -> None:
        self.cursor.close()


class _Connection:
    def __init__(self, conn: Any, hook: Hook) -> None:
        self.conn, self.hook = conn, hook

    def cursor(self) -> _Cursor:
        return _Cursor(self.conn.cursor(), self.conn.driver_connection, self.hook)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def hook_appends(spool: Spool, hook: Hook, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """Call hook before each statement of the spool's appends (its pooled connections are real)."""
    checkout = spool._checkout

    def hooked(held: Any = None) -> Any:
        return _Connection(checkout(held), hook)

    if monkeypatch is None:
        spool._checkout = hooked  # type: ignore[method-assign]
    else:
        monkeypatch.setattr(spool, "_checkout", hooked)
