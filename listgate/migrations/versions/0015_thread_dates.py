"""thread dates: a live thread with a visible post is dated by its visible posts alone

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_THREADS = sa.table(
    "threads",
    sa.column("id", sa.Integer),
    sa.column("list_id", sa.Integer),
    sa.column("merged_into_id", sa.Integer),
    sa.column("created_at", sa.DateTime),
    sa.column("last_activity", sa.DateTime),
)
_MESSAGES = sa.table(
    "messages",
    sa.column("thread_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("date", sa.DateTime),
)
_LISTS = sa.table("lists", sa.column("id", sa.Integer), sa.column("changes", sa.BigInteger))
_VISIBLE = "visible"


def upgrade() -> None:
    # Code before 9f27d8e dated a thread started by a held post by that post (its start or last
    # activity), and code before 0015 kept a hidden post's date as its thread's last activity:
    # the list showed dates nobody may see. The rule is listgate.conversations': a thread's
    # dates are its visible posts' first and last (one without a visible post is not shown).
    conn = op.get_bind()
    t, m = _THREADS, _MESSAGES
    shown = (
        sa.select(
            m.c.thread_id, sa.func.min(m.c.date).label("first"), sa.func.max(m.c.date).label("last")
        )
        .where(m.c.status == _VISIBLE)
        .group_by(m.c.thread_id)
        .subquery()
    )
    wrong = conn.execute(
        sa.select(t.c.id, t.c.list_id, shown.c.first, shown.c.last)
        .join(shown, shown.c.thread_id == t.c.id)
        .where(t.c.merged_into_id.is_(None))
        .where(
            sa.or_(
                t.c.created_at.is_distinct_from(shown.c.first),
                t.c.last_activity.is_distinct_from(shown.c.last),
            )
        )
    ).all()
    for row in wrong:
        conn.execute(
            t.update().where(t.c.id == row.id).values(created_at=row.first, last_activity=row.last)
        )
    for list_id in sorted({r.list_id for r in wrong}):
        # what the list shows changed: a web process keeping its pages drops them (0011)
        conn.execute(
            _LISTS.update().where(_LISTS.c.id == list_id).values(changes=_LISTS.c.changes + 1)
        )


def downgrade() -> None:
    # Nothing to undo: the code before 0015 reads these dates as well.
    pass
