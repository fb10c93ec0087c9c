"""thread roots: merged-away threads name no root; a live thread starts at a visible post of its own

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
# After 0013 (merged first, main): an archive already at 0013 still gets this repair.
down_revision = "0011"
branch_labels = None
depends_on = None

_THREADS = sa.table(
    "threads",
    sa.column("id", sa.Integer),
    sa.column("list_id", sa.Integer),
    sa.column("root_message_pk", sa.Integer),
    sa.column("merged_into_id", sa.Integer),
    sa.column("subject", sa.Text),
    sa.column("subject_norm", sa.String),
    sa.column("starter_name", sa.String),
)
_MESSAGES = sa.table(
    "messages",
    sa.column("id", sa.Integer),
    sa.column("thread_id", sa.Integer),
    sa.column("parent_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("date", sa.DateTime),
    sa.column("message_id", sa.String),
    sa.column("subject", sa.Text),
    sa.column("subject_norm", sa.String),
    sa.column("from_name", sa.String),
)
_LISTS = sa.table("lists", sa.column("id", sa.Integer), sa.column("changes", sa.BigInteger))
_VISIBLE = "visible"
# a start hidden or removed since keeps its place (listgate.conversations.fix_root)
_PUBLISHED = (_VISIBLE, "hidden", "removed")


def upgrade() -> None:
    # Code before 0012 left a merged-away thread's root naming a message now in its survivor, and
    # a merge with an older thread of held posts only gave the survivor no root (or a reply as
    # root) and the held post's subject. The rule is listgate.conversations.fix_root's: a live
    # thread with a visible post whose root is no published parentless message of its own gets
    # its earliest visible parentless message (else its earliest visible one) as root.
    conn = op.get_bind()
    t, m = _THREADS, _MESSAGES
    conn.execute(
        t.update()
        .where(t.c.merged_into_id.is_not(None), t.c.root_message_pk.is_not(None))
        .values(root_message_pk=None)
    )
    root = m.alias("root")
    start = (
        sa.exists()
        .where(root.c.id == t.c.root_message_pk, root.c.thread_id == t.c.id)
        .where(root.c.status.in_(_PUBLISHED), root.c.parent_id.is_(None))
    )
    shown = sa.exists().where(m.c.thread_id == t.c.id, m.c.status == _VISIBLE)
    broken = conn.execute(
        sa.select(t.c.id, t.c.list_id, t.c.root_message_pk).where(
            t.c.merged_into_id.is_(None), shown, ~start
        )
    ).all()
    moved = {r.list_id for r in broken if _fix(conn, r.id) != r.root_message_pk}
    for list_id in sorted(moved):
        # what the list shows changed: a web process keeping its pages drops them (0011)
        conn.execute(
            _LISTS.update().where(_LISTS.c.id == list_id).values(changes=_LISTS.c.changes + 1)
        )


def _fix(conn: sa.Connection, thread_id: int) -> int:
    """Make the thread's root its earliest visible message without a parent, else its earliest
    visible one (the thread has one); that message's pk."""
    m = _MESSAGES
    row = conn.execute(
        sa.select(m.c.id, m.c.subject, m.c.subject_norm, m.c.from_name)
        .where(m.c.thread_id == thread_id, m.c.status == _VISIBLE)
        .order_by(m.c.parent_id.is_not(None), m.c.date, m.c.message_id)
        .limit(1)
    ).one()
    conn.execute(
        _THREADS.update()
        .where(_THREADS.c.id == thread_id)
        .values(
            root_message_pk=row.id,
            subject=row.subject,
            subject_norm=row.subject_norm,
            starter_name=row.from_name,
        )
    )
    return int(row.id)


def downgrade() -> None:
    # Nothing to undo: the code before 0012 reads the repaired roots as well (a merged-away
    # thread's root was never read through its redirect).
    pass
