"""reading: reader time zones and secret feed keys, read marks, edited web posts, replies by parent

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people") as batch_op:
        batch_op.add_column(
            sa.Column("time_zone", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("feed_token", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.create_index("ix_people_feed_token", ["feed_token"], unique=False)
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_messages_parent", ["parent_id"], unique=False)
    op.create_table(
        "read_marks",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_pk", sa.Integer(), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_read_marks_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("address", "thread_id", name=op.f("pk_read_marks")),
    )
    op.create_table(
        "message_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"], ["messages.id"], name=op.f("fk_message_edits_message_pk_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_edits")),
    )
    op.create_index(
        op.f("ix_message_edits_message_pk"), "message_edits", ["message_pk"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_message_edits_message_pk"), table_name="message_edits")
    op.drop_table("message_edits")
    op.drop_table("read_marks")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index("ix_messages_parent")
        batch_op.drop_column("edited_at")
    with op.batch_alter_table("people") as batch_op:
        batch_op.drop_index("ix_people_feed_token")
        batch_op.drop_column("feed_token")
        batch_op.drop_column("time_zone")
