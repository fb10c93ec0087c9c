"""facts_epoch: one row whose number triggers bump when a fact the gateway decides by changes

Revision ID: 0025
Revises: 0024

The gateway's writer keeps the facts a post is decided by (lists' deciding columns, bans, list
and digest subscriptions) between batches and spools a batch decided from them only if this
number still reads as it did (listgate.models.epoch, listgate.factcache). On PostgreSQL, triggers
on lists, bans and subscriptions bump it; on SQLite the table is made and nothing reads it.
Down, the triggers, their function and the table go: the gateway before 0025 reads every batch's
facts.
"""

import sqlalchemy as sa
from alembic import op

from listgate.models.epoch import DOWN, EPOCH_TABLE, UP

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        EPOCH_TABLE,
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facts_epoch")),
    )
    for sql in UP[op.get_bind().dialect.name]:
        op.execute(sql)


def downgrade() -> None:
    for sql in DOWN[op.get_bind().dialect.name]:
        op.execute(sql)
    op.drop_table(EPOCH_TABLE)
