"""post_hidings: the stretches of time a post was hidden by readers' reports; digests_sent found
by period (list, frequency, day)

Revision ID: 0020
Revises: 0019

A digest made while its post was hidden went without it; put back, the post comes in the next
digest of each reader who did not have it, daily or weekly, whenever that digest was made. The
posts hidden now get their stretch, from their newest open report (the one that hid them).

The unique (list, address, frequency, day) index of digests_sent leads with the address after
the list: a period's rows (the addresses a run already claimed, the digests that held a post put
back) were found by reading every digest row of the list.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "post_hidings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"]),
        sa.ForeignKeyConstraint(["message_pk"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_post_hidings_message_pk", "post_hidings", ["message_pk"])
    op.create_index("ix_post_hidings_list_restored", "post_hidings", ["list_id", "restored_at"])
    op.execute(
        "INSERT INTO post_hidings (message_pk, list_id, hidden_at)"
        " SELECT m.id, m.list_id, COALESCE((SELECT max(r.created_at) FROM reports r"
        " WHERE r.message_pk = m.id AND r.status = 'open'), m.received_at)"
        " FROM messages m WHERE m.status = 'hidden'"
    )
    op.create_index("ix_digests_sent_period", "digests_sent", ["list_id", "frequency", "day"])


def downgrade() -> None:
    op.drop_index("ix_digests_sent_period", table_name="digests_sent")
    op.drop_index("ix_post_hidings_list_restored", table_name="post_hidings")
    op.drop_index("ix_post_hidings_message_pk", table_name="post_hidings")
    op.drop_table("post_hidings")
