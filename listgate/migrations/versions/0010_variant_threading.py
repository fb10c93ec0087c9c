"""variant threading: the Date and subject that place a message (its earliest copy's), and which
variant places it

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, no batch mode: on SQLite a batch copies the table and loses its search
    # triggers. SQLite adds a NOT NULL column only with a default: a placeholder, overwritten at
    # once.
    op.add_column(
        "messages",
        sa.Column(
            "thread_date",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default="1970-01-01 00:00:00",
        ),
    )
    op.add_column(
        "messages",
        sa.Column("thread_subject_norm", sa.String(length=255), nullable=False, server_default=""),
    )
    # Until now the first copy placed a message: its own Date and subject (a variant re-places
    # it when another copy of that Message-ID arrives, docs/threading.md).
    op.execute("UPDATE messages SET thread_date = date, thread_subject_norm = subject_norm")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("messages", "thread_date", server_default=None)
        op.alter_column("messages", "thread_subject_norm", server_default=None)
    op.drop_index("ix_messages_list_subject_date", table_name="messages")
    op.create_index(
        "ix_messages_list_thread_subject",
        "messages",
        ["list_id", "thread_subject_norm", "thread_date"],
        unique=False,
    )
    op.add_column(
        "message_variants",
        sa.Column("places", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("message_variants", "places")
    op.drop_index("ix_messages_list_thread_subject", table_name="messages")
    op.create_index(
        "ix_messages_list_subject_date",
        "messages",
        ["list_id", "subject_norm", "date"],
        unique=False,
    )
    op.drop_column("messages", "thread_subject_norm")
    op.drop_column("messages", "thread_date")
