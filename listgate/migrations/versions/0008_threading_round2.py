"""threading round 2: the chosen parent before loops are cut, subject-fallback messages, In-Reply-To
refs, variants

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, no batch mode: on SQLite a batch copies the table and loses its search
    # triggers.
    op.add_column("messages", sa.Column("pref_parent_id", sa.Integer(), nullable=True))
    op.add_column(
        "messages", sa.Column("by_subject", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_index(
        "ix_messages_list_subject_date",
        "messages",
        ["list_id", "subject_norm", "date"],
        unique=False,
    )
    op.add_column(
        "message_refs", sa.Column("in_reply_to", sa.Integer(), server_default="0", nullable=False)
    )
    # Archives threaded before: the parent they have is the one chosen; a parent without any
    # reference header came from the subject fallback.
    op.execute("UPDATE messages SET pref_parent_id = parent_id")
    op.execute(
        "UPDATE messages SET by_subject = true WHERE parent_id IS NOT NULL AND \"references\" = '' "
        "AND in_reply_to = ''"
    )
    op.create_table(
        "message_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("raw_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("from_name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"], ["messages.id"], name=op.f("fk_message_variants_message_pk_messages")
        ),
        sa.ForeignKeyConstraint(
            ["raw_id"], ["raw_messages.id"], name=op.f("fk_message_variants_raw_id_raw_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_variants")),
        sa.UniqueConstraint("message_pk", "raw_id", name="uq_message_variants_message_raw"),
    )
    with op.batch_alter_table("message_variants", schema=None) as batch_op:
        batch_op.create_index("ix_message_variants_message_pk", ["message_pk"], unique=False)


def downgrade() -> None:
    op.drop_table("message_variants")
    op.drop_column("message_refs", "in_reply_to")
    op.drop_index("ix_messages_list_subject_date", table_name="messages")
    op.drop_column("messages", "by_subject")
    op.drop_column("messages", "pref_parent_id")
