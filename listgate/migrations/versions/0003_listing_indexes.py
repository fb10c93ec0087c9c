"""featured threads: a partial index, so a list's first page finds them without reading every thread

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The list page asks "threads.featured = 1" (SQLite) / "= true" (PostgreSQL): both imply these WHERE
# clauses.
UP = {
    "sqlite": (
        "CREATE INDEX ix_threads_featured ON threads (list_id, last_activity, id) "
        "WHERE featured = 1"
    ),
    "postgresql": (
        "CREATE INDEX ix_threads_featured ON threads (list_id, last_activity, id) WHERE featured"
    ),
}


def upgrade() -> None:
    statement = UP.get(op.get_bind().dialect.name)
    if statement:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name in UP:
        op.execute("DROP INDEX IF EXISTS ix_threads_featured")
