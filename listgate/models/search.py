"""The full-text search objects beside the tables they index: FTS5 on SQLite, a tsvector on
PostgreSQL.

They are not columns or indexes a model can declare for both databases, so they are described
here as DDL: migration 0002 runs it, `Base.metadata.create_all` runs it too (DDL events on the
messages table), and the Alembic environment leaves these names out of autogenerate's
comparison (`managed_here`), so a generated migration never proposes dropping them. Kept up to
date in the same transaction as each message: by triggers on SQLite, by the generated column on
PostgreSQL. tests/integration/test_schema_agrees.py checks, on both databases, that after
`upgrade head` the models and the database agree and these objects exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, event

from listgate.models.archive import Message

FTS_TABLE = "messages_fts"  # SQLite; FTS5 keeps its data in shadow tables named messages_fts_*
SEARCH_COLUMN = "search_vector"  # PostgreSQL: a generated tsvector on messages
SEARCH_INDEX = "ix_messages_search_vector"
SQLITE_TRIGGERS = ("messages_fts_insert", "messages_fts_delete", "messages_fts_update")

SQLITE_UP = [
    f"""CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(
        subject, from_name, body_text,
        content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, subject, from_name, body_text)
        VALUES (new.id, new.subject, new.from_name, new.body_text);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, subject, from_name, body_text)
        VALUES ('delete', old.id, old.subject, old.from_name, old.body_text);
    END""",
    """CREATE TRIGGER messages_fts_update
    AFTER UPDATE OF subject, from_name, body_text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, subject, from_name, body_text)
        VALUES ('delete', old.id, old.subject, old.from_name, old.body_text);
        INSERT INTO messages_fts(rowid, subject, from_name, body_text)
        VALUES (new.id, new.subject, new.from_name, new.body_text);
    END""",
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    *(f"DROP TRIGGER IF EXISTS {t}" for t in reversed(SQLITE_TRIGGERS)),
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
]
# Bodies are cut at 200,000 characters: a tsvector is limited to 1 MB.
POSTGRES_UP = [
    f"""ALTER TABLE messages ADD COLUMN {SEARCH_COLUMN} tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(subject, '')), 'A') ||
        setweight(to_tsvector('simple'::regconfig, coalesce(from_name, '')), 'B') ||
        setweight(to_tsvector('english'::regconfig, left(coalesce(body_text, ''), 200000)), 'C')
    ) STORED""",
    f"CREATE INDEX {SEARCH_INDEX} ON messages USING GIN ({SEARCH_COLUMN})",
]
POSTGRES_DOWN = [
    f"DROP INDEX IF EXISTS {SEARCH_INDEX}",
    f"ALTER TABLE messages DROP COLUMN IF EXISTS {SEARCH_COLUMN}",
]
UP = {"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}
DOWN = {"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}

for _dialect, _statements in UP.items():
    for _sql in _statements:
        event.listen(Message.__table__, "after_create", DDL(_sql).execute_if(dialect=_dialect))


def managed_here(obj: Any, name: str | None, type_: str, reflected: bool, _compare_to: Any) -> bool:
    """Alembic's include_object: False for the search objects above (not in the models)."""
    if not reflected:
        return True
    if (
        type_ == "table"
        and name is not None
        and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_"))
    ):
        return False
    if (
        type_ == "column"
        and name == SEARCH_COLUMN
        and getattr(getattr(obj, "table", None), "name", "") == "messages"
    ):
        return False
    return not (type_ == "index" and name == SEARCH_INDEX)
