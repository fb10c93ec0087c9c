"""subscriptions end instead of being deleted; approvals; outbox failures; not-posted queue;
auto-reply rate

Revision ID: 0006
Revises: 0005

Deliveries and bounces keep pointing at a subscription after it ends, so ending one never
deletes its row (a DELETE failed on the foreign keys for anyone who was ever mailed): the row
gets ended_at and a reason and is reused when the person comes back. Existing rows are all
live subscriptions, so no data changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("end_reason", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("approved_by", sa.String(length=320), server_default="", nullable=False)
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "auto_replies",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_auto_replies")),
    )
    op.create_table(
        "not_posted",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("raw_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("from_addr", sa.String(length=320), nullable=False),
        sa.Column("envelope_from", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=320), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_not_posted_list_id_lists")
        ),
        sa.ForeignKeyConstraint(
            ["raw_id"], ["raw_messages.id"], name=op.f("fk_not_posted_raw_id_raw_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_not_posted")),
    )
    with op.batch_alter_table("not_posted", schema=None) as batch_op:
        batch_op.create_index("ix_not_posted_list_open", ["list_id", "released_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("not_posted", schema=None) as batch_op:
        batch_op.drop_index("ix_not_posted_list_open")
    op.drop_table("not_posted")
    op.drop_table("auto_replies")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("failed_at")
    # Ended rows would read as live after a downgrade: remove them first (their history goes too).
    op.execute(
        "DELETE FROM subscriptions WHERE status = 'ended' AND id NOT IN "
        "(SELECT subscription_id FROM deliveries WHERE subscription_id IS NOT NULL "
        "UNION SELECT subscription_id FROM bounces WHERE subscription_id IS NOT NULL)"
    )
    op.execute(
        "UPDATE subscriptions SET status = 'suspended' WHERE status IN ('ended', 'awaiting')"
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("approved_by")
        batch_op.drop_column("end_reason")
        batch_op.drop_column("ended_at")
