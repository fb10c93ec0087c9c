"""A Core statement compiled once per dialect and run on the driver's own cursor.

For a statement the gateway runs for every group-commit batch: SQLAlchemy's execution of a
Core statement (its cache key, an execution context, the result's metadata read from the
cursor's description) costs more CPU than the driver's own execution of it. Here the statement
is compiled once per dialect, its constants written into its SQL, and each run hands the driver
the same SQL text (SQLite's statement cache, psycopg's prepared statements) with the values passed
through the columns' own type processors, as SQLAlchemy would. A driver error comes back as
SQLAlchemy's (sqlalchemy.exc.DBAPIError); one that lost the connection invalidates it first,
and closes the pool's others (`Engine.dispose`: the pool starts afresh, connections in use
stay usable), as SQLAlchemy lets them all go on a disconnect, so a server restart costs one
failed statement, not one per pooled connection. The engine's before_cursor_execute
listeners see each run as they see any statement (a statement counter, a fault injected there);
no other statement event is sent.

On PostgreSQL a run can carry statements queued ahead of it (`Ahead`, set in the connection's
`info` under AHEAD for the next run only): the SELECT, then those, go in one pipeline (psycopg's
pipeline mode) closed by one Sync, so the server answers all of them in one round trip. Between
two Syncs they are one implicit transaction: its commit comes before the answer, and when any of
them fails (on the server, or refused by the driver before it was sent) none of them is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select, visitors
from sqlalchemy.sql.elements import BindParameter

Process = Callable[[Any], Any] | None


class _Compiled:
    """The statement for one dialect: its SQL (constants written in), its values' and columns'
    processors."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        inlined = visitors.replacement_traverse(statement, {}, _inline)
        assert isinstance(inlined, Select)  # a copy of the statement
        compiled = inlined.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        self.sql = str(compiled)
        # qmark drivers (SQLite) take the values in order, by name in positiontup
        self.order: list[str] | None = compiled.positiontup
        self.binds: dict[str, Process] = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for bind, name in compiled.bind_names.items()
            if not bind.literal_execute
        }
        self.results: list[Process] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]

    def params(self, values: Mapping[str, Any]) -> dict[str, Any] | list[Any]:
        """The driver's parameters for these values."""
        params = {}
        for name, value in values.items():
            process = self.binds[name]
            params[name] = process(value) if process is not None and value is not None else value
        return params if self.order is None else [params[name] for name in self.order]


def _inline(element: Any, **_: Any) -> Any:
    """A constant of the statement written into its SQL (the driver dumps fewer parameters per
    run); a parameter each run passes left as it is, asked for only then."""
    if not isinstance(element, BindParameter):
        return None
    if element.value is not None:
        return element.render_literal_execute()
    return bindparam(element.key, type_=element.type, required=False)


AHEAD = "listgate_ahead"  # Connection.info key: an Ahead for the connection's next run


class Ahead:
    """Statements the next DriverStatement run on a connection sends with its SELECT, in one round
    trip (PostgreSQL's pipeline mode), committed with it or not at all.

    queue(driver_connection) queues them on the driver's connection (its cursor's execute, in
    pipeline mode: nothing is waited for). After the run, `sent` says they were handed to the
    driver; `done` says they and the SELECT were committed (the run returned its rows). Sent and
    not done on a lost connection: whether they were committed is unknown; on a connection still
    there: they were not.
    """

    def __init__(self, queue: Callable[[Any], None]) -> None:
        self.queue = queue
        self.sent = False
        self.done = False


class DriverStatement:
    """A SELECT run on the driver's cursor of a SQLAlchemy connection (see the module)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._lock = threading.Lock()

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The statement as compiled for this dialect (once)."""
        key = (dialect.name, dialect.driver)
        found = self._compiled.get(key)
        if found is None:
            with self._lock:
                found = self._compiled.setdefault(key, _Compiled(self.statement, dialect))
        return found

    def rows(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row for these values (each bound parameter by name), each column as its type
        reads it.

        Runs on the connection as it is: in a transaction if the driver has one open, else by
        itself (an AUTOCOMMIT connection, or SQLite's pooled connections outside a BEGIN).
        """
        dialect = conn.dialect
        compiled = self.compiled(dialect)
        params = compiled.params(values)
        pooled = conn.connection
        cursor = pooled.cursor()
        sql = compiled.sql
        try:
            for listener in conn.dispatch.before_cursor_execute:
                sql, params = listener(conn, cursor, sql, params, None, False)
            ahead: Ahead | None = conn.info.pop(AHEAD, None)
            if ahead is None:
                cursor.execute(sql, params)
            else:
                _with_ahead(pooled.dbapi_connection, cursor, sql, params, ahead)
            found = cursor.fetchall()
        except BaseException as exc:
            driver = isinstance(exc, dialect.loaded_dbapi.Error)  # else a listener's own
            gone = driver and dialect.is_disconnect(
                exc,  # type: ignore[arg-type]  # the driver's Error, checked above
                pooled.dbapi_connection,
                cursor,
            )
            with suppress(Exception):  # a cursor of a lost connection may refuse even this
                cursor.close()
            if not driver:
                raise
            if gone:  # as SQLAlchemy does: this connection, and the pool's older ones with it
                conn.invalidate(exc)
                conn.engine.dispose()
            raise DBAPIError.instance(
                sql,
                params,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=dialect,
            ) from exc
        cursor.close()
        processors = compiled.results
        if not any(processors):
            return [tuple(row) for row in found]
        return [
            tuple(
                value if p is None else p(value) for p, value in zip(processors, row, strict=True)
            )
            for row in found
        ]


def _with_ahead(driver: Any, cursor: Any, sql: str, params: Any, ahead: Ahead) -> None:
    """The SELECT, then ahead's statements, in one pipeline: one Sync, one round trip.

    The SELECT first: its values are dumped (and may be refused, a NUL in a text) before anything
    else is queued, so a refusal there leaves nothing to commit when the pipeline's Sync goes out.
    """
    with driver.pipeline():
        cursor.execute(sql, params)
        ahead.queue(driver)
        ahead.sent = True
    ahead.done = True  # the pipeline's end fetched every result and the Sync's: committed
