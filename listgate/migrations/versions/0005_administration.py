"""list administration: owners and Reply-To policy, the audit log, takedowns, moderators'
reminders, weekly digests and the digest format

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lists") as batch:
        batch.add_column(sa.Column("owners", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("reply_to", sa.String(16), nullable=False, server_default="none")
        )
    with op.batch_alter_table("people") as batch:
        batch.add_column(
            sa.Column("digest_format", sa.String(8), nullable=False, server_default="mime")
        )
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(
            sa.Column("digest_frequency", sa.String(8), nullable=False, server_default="daily")
        )
    with op.batch_alter_table("digests_sent") as batch:
        batch.add_column(
            sa.Column("frequency", sa.String(8), nullable=False, server_default="daily")
        )
        batch.drop_constraint("uq_digests_sent_scope", type_="unique")
        batch.create_unique_constraint(
            "uq_digests_sent_scope", ["list_id", "address", "frequency", "day"]
        )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_list", "audit_log", ["list_id", "id"])
    op.create_table(
        "removals",
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("removed_by", sa.String(320), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"], ["messages.id"], name=op.f("fk_removals_message_pk_messages")
        ),
        sa.PrimaryKeyConstraint("message_pk", name=op.f("pk_removals")),
    )
    op.create_table(
        "moderation_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_moderation_reminders_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_reminders")),
        sa.UniqueConstraint("list_id", "day", name="uq_moderation_reminders_list_day"),
    )


def downgrade() -> None:
    op.drop_table("moderation_reminders")
    op.drop_table("removals")
    op.drop_index("ix_audit_log_list", table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("digests_sent") as batch:
        batch.drop_constraint("uq_digests_sent_scope", type_="unique")
        batch.create_unique_constraint("uq_digests_sent_scope", ["list_id", "address", "day"])
        batch.drop_column("frequency")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("digest_frequency")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("digest_format")
    with op.batch_alter_table("lists") as batch:
        batch.drop_column("reply_to")
        batch.drop_column("owners")
