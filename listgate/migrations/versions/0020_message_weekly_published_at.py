"""message weekly_published_at: when a post put back after its week's digest went without it is
published again for the weekly digests only (its day's digest had it); digests_sent found by
period (list, frequency, day): which addresses a run already claimed, and whether a period's
digest was made before a post was hidden

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # As 0018: a plain ALTER TABLE, nullable without a default, rewrites no row. NULL reads as
    # published_at (else received_at), which is what every weekly digest that went out assumed.
    op.add_column(
        "messages", sa.Column("weekly_published_at", sa.DateTime(timezone=True), nullable=True)
    )
    # the unique (list, address, frequency, day) index leads with the address after the list:
    # a period's rows were found by reading all of the list's
    op.create_index("ix_digests_sent_period", "digests_sent", ["list_id", "frequency", "day"])


def downgrade() -> None:
    op.drop_index("ix_digests_sent_period", table_name="digests_sent")
    op.drop_column("messages", "weekly_published_at")
