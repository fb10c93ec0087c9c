"""digests_sent.claimed_at: a digest claimed by a worker that died is sent again, or, when its
final dot went out (`handing`), counted as sent

Revision ID: 0022
Revises: 0021

A digest row stayed `sending` for good when its worker was killed while it sent it: the reader
never got that digest (the runs after it take back only `deferred` rows), and the copies of its
posts the claim had cancelled were gone too. Now each claim is stamped and the sweeper takes
back the stale ones. A row a dead worker left `sending` before the upgrade is stale at once: it is
sent again (whether its relay took it cannot be known; a second copy, never a lost one).
Down, a `handing` row becomes `sent`, as the sweeper would have made it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER TABLE in place, no batch rebuild: bounces.digest_id points at digests_sent (0021)
    op.add_column("digests_sent", sa.Column("claimed_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE digests_sent SET claimed_at = created_at WHERE status = 'sending'")
    op.create_index("ix_digests_sent_claims", "digests_sent", ["status", "claimed_at"])


def downgrade() -> None:
    op.execute(
        "UPDATE digests_sent SET status = 'sent', sent_at = COALESCE(sent_at, claimed_at)"
        " WHERE status = 'handing'"
    )
    op.drop_index("ix_digests_sent_claims", table_name="digests_sent")
    op.drop_column("digests_sent", "claimed_at")
