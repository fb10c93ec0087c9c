"""outbox.claimed_at: a notice claimed by a worker that died before the relay took it is sent
again

Revision ID: 0023
Revises: 0022

A notice (confirmation, welcome, goodbye, moderators' notice...) was claimed by setting done_at
before it was sent: a worker killed before its final dot lost it for good (the sweeper looks only
at entries not done). Now the claim is stamped in claimed_at, done_at is set in the transaction
around the final dot, and the beat's retry job releases the claims a dead worker left. Entries
done before the upgrade stay done (whether their relay took them cannot be known).
Down, an entry claimed and not done goes back to the sweeper: sent again, never lost.
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_at")
