"""bounces.digest_id: a digest's copy has its bounce rows, as a post's copy has (delivery_id);
subscriptions.suspended_at: when bounces stopped a subscription's mail

Revision ID: 0021
Revises: 0020

One copy counts once, at its hardest report: a 4xx then the 5xx that gave up about the same
copy add up to one permanent bounce, not 1.5, nor only the first 0.5. A post's copy finds its
earlier reports by its deliveries row; a digest's had no column to be found by, so a 4xx then a
5xx about one digest counted the 4xx only. The digests reported before the upgrade keep what
their row says (digests_sent.last_error names the kind of their last report).

A subscriber of every post suspended by bounces and then switching to the digest was taken to
have had every post up to the switch, those mailed to nobody while suspended too: the digest left
them out. The rows suspended now were suspended at their last counted bounce (last_bounce_at).
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bounces") as batch:
        batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_bounces_digest_id_digests_sent", "digests_sent", ["digest_id"], ["id"]
        )
        batch.create_index("ix_bounces_digest_id", ["digest_id"])
    # not a batch: on SQLite that makes the table again, and deliveries and bounces name its rows
    op.add_column("subscriptions", sa.Column("suspended_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE subscriptions SET suspended_at = last_bounce_at WHERE status = 'suspended'")


def downgrade() -> None:
    op.drop_column("subscriptions", "suspended_at")
    with op.batch_alter_table("bounces") as batch:
        batch.drop_index("ix_bounces_digest_id")
        batch.drop_constraint("fk_bounces_digest_id_digests_sent", type_="foreignkey")
        batch.drop_column("digest_id")
