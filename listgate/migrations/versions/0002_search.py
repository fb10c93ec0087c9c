"""full-text search: FTS5 on SQLite, a generated tsvector with a GIN index on PostgreSQL

Kept up to date in the same transaction as each message: by triggers on SQLite, by the
generated column on PostgreSQL. Ingest needs no change.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQLITE_UP = [
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
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
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF subject, from_name, body_text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, subject, from_name, body_text)
        VALUES ('delete', old.id, old.subject, old.from_name, old.body_text);
        INSERT INTO messages_fts(rowid, subject, from_name, body_text)
        VALUES (new.id, new.subject, new.from_name, new.body_text);
    END""",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
]
# Bodies are cut at 200,000 characters: a tsvector is limited to 1 MB.
POSTGRES_UP = [
    """ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(subject, '')), 'A') ||
        setweight(to_tsvector('simple'::regconfig, coalesce(from_name, '')), 'B') ||
        setweight(to_tsvector('english'::regconfig, left(coalesce(body_text, ''), 200000)), 'C')
    ) STORED""",
    "CREATE INDEX ix_messages_search_vector ON messages USING GIN (search_vector)",
]
POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_messages_search_vector",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search_vector",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_UP)
    elif dialect == "postgresql":
        _run(POSTGRES_UP)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_DOWN)
    elif dialect == "postgresql":
        _run(POSTGRES_DOWN)
