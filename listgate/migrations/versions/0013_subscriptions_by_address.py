"""subscriptions by address: a person's own pages find their rows without reading every subscription

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # /me/subscriptions asks for an address on every list (the unique key starts with the list);
    # with the status, SQLite without statistics prefers it to walking a list's members by
    # (list, kind, status) when it asks whether one address is an active member
    op.create_index("ix_subscriptions_address", "subscriptions", ["address", "status"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_address", table_name="subscriptions")
