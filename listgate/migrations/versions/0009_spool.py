"""spool: mail accepted at SMTP DATA, durable before the 250, archived by its own stage; spool_marks
(SQLite's spool file)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spool",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mail_from", sa.Text(), nullable=True),
        sa.Column("rcpt_tos", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(1000), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_spool"),
    )
    op.create_index("ix_spool_state_id", "spool", ["state", "id"])
    op.create_table(
        "spool_marks",
        sa.Column("generation", sa.String(64), nullable=False),
        sa.Column("archived_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("generation", name="pk_spool_marks"),
    )


def downgrade() -> None:
    op.drop_table("spool_marks")
    op.drop_index("ix_spool_state_id", table_name="spool")
    op.drop_table("spool")
