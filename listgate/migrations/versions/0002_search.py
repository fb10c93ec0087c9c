"""full-text search: FTS5 on SQLite, a generated tsvector with a GIN index on PostgreSQL

Kept up to date in the same transaction as each message: by triggers on SQLite, by the
generated column on PostgreSQL. Ingest needs no change.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from listgate.models.search import DOWN, UP

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The statements are the models' own description of the search objects (listgate/models/search.py).


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _run(UP.get(op.get_bind().dialect.name, []))


def downgrade() -> None:
    _run(DOWN.get(op.get_bind().dialect.name, []))
