"""message published_at: when a held post was made visible (a moderator approved it)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, no batch mode (a batch copies the table on SQLite); a nullable column
    # without a default rewrites no row on PostgreSQL either. Every post already archived was
    # published when it was received (NULL reads as received_at), which is what the digests that
    # went out assumed.
    op.add_column("messages", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "published_at")
