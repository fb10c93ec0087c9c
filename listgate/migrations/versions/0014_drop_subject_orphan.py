"""threads.subject_orphan dropped: written since the first schema, never read

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain column (no index, key or constraint): SQLite >= 3.35 drops it in place
    op.drop_column("threads", "subject_orphan")


def downgrade() -> None:
    op.add_column(
        "threads",
        sa.Column("subject_orphan", sa.Boolean(), nullable=False, server_default="0"),
    )
