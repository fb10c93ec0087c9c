"""bounces.digest_id: a digest's copy has its bounce rows, as a post's copy has (delivery_id)

Revision ID: 0021
Revises: 0020

One copy counts once, at its hardest report: a 4xx then the 5xx that gave up about the same
copy add up to one permanent bounce, not 1.5, nor only the first 0.5. A post's copy finds its
earlier reports by its deliveries row; a digest's had no column to be found by, so a 4xx then a
5xx about one digest counted the 4xx only. The digests reported before the upgrade keep what
their row says (digests_sent.last_error names the kind of their last report).
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


def downgrade() -> None:
    with op.batch_alter_table("bounces") as batch:
        batch.drop_index("ix_bounces_digest_id")
        batch.drop_constraint("fk_bounces_digest_id_digests_sent", type_="foreignkey")
        batch.drop_column("digest_id")
