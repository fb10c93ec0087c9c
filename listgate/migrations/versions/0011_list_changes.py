"""list changes: a counter raised with every change to what a list's archive shows

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, no batch mode (a batch copies the table on SQLite). Existing lists start
    # at 0: a web process starting after the upgrade remembers nothing yet.
    op.add_column(
        "lists", sa.Column("changes", sa.BigInteger(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("lists", "changes")
