"""What a purge must not leave: every row of the database that still holds a word."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text


def rows_holding(engine: Engine, word: str) -> list[str]:
    """'table: row' for every row of every table whose text or stored bytes hold word (in any
    case: the normalised subjects are lower-cased)."""
    needles = (word.lower().encode(), word.lower().encode().hex().encode())
    found = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                flat = b" ".join(
                    v if isinstance(v, bytes) else str(v).encode() for v in row if v is not None
                )
                if any(n in flat.lower() for n in needles):
                    found.append(f"{table}: {flat[:120]!r}")
    return found
