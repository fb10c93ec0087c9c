"""message derivation: a counter raised each time what a post shows is derived again

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, no batch mode (a batch copies the table on SQLite). A constant default
    # is kept in the catalogue on PostgreSQL (11 and later) and SQLite alike: no row is rewritten,
    # however big the archive. Every post starts at 0, as derived when it arrived.
    op.add_column(
        "messages", sa.Column("derivation", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("messages", "derivation")
