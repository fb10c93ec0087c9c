"""list activity and participants: a list is dated by its visible posts, a thread's participants
are the people with a visible post in it

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_LISTS = sa.table(
    "lists",
    sa.column("id", sa.Integer),
    sa.column("changes", sa.BigInteger),
    sa.column("last_activity", sa.DateTime),
)
_THREADS = sa.table(
    "threads",
    sa.column("id", sa.Integer),
    sa.column("list_id", sa.Integer),
    sa.column("merged_into_id", sa.Integer),
    sa.column("participant_count", sa.Integer),
)
_PARTICIPANTS = sa.table(
    "thread_participants", sa.column("thread_id", sa.Integer), sa.column("address", sa.String)
)
_MESSAGES = sa.table(
    "messages",
    sa.column("list_id", sa.Integer),
    sa.column("thread_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("date", sa.DateTime),
    sa.column("from_addr", sa.String),
    sa.column("from_name", sa.String),
)
_VISIBLE = "visible"


def upgrade() -> None:
    # 0015 dated threads by their visible posts but left lists.last_activity alone: a list whose
    # last visible post was hidden before 0015 showed the hidden post's date. And code before
    # 0016 kept a hidden or removed post's author among its thread's participants. The rules are
    # listgate.conversations': a list's last activity is its latest visible post's date (none
    # when it shows nothing), a thread's participants the people with a visible post in it.
    conn = op.get_bind()
    changed = _list_activity(conn) | _participants(conn)
    for list_id in sorted(changed):
        # what the list shows changed: a web process keeping its pages drops them (0011)
        conn.execute(
            _LISTS.update().where(_LISTS.c.id == list_id).values(changes=_LISTS.c.changes + 1)
        )


def _list_activity(conn: sa.Connection) -> set[int]:
    """Lists dated by their latest visible post again; their ids."""
    m, lst = _MESSAGES, _LISTS
    latest = (
        sa.select(sa.func.max(m.c.date))
        .where(m.c.list_id == lst.c.id, m.c.status == _VISIBLE)
        .scalar_subquery()
    )
    wrong = [
        r.id
        for r in conn.execute(
            sa.select(lst.c.id).where(lst.c.last_activity.is_distinct_from(latest))
        )
    ]
    for list_id in wrong:
        conn.execute(lst.update().where(lst.c.id == list_id).values(last_activity=latest))
    return set(wrong)


def _participants(conn: sa.Connection) -> set[int]:
    """Participant rows and counts of live threads from their visible posts; the lists whose
    threads' counts moved."""
    m, p, t = _MESSAGES, _PARTICIPANTS, _THREADS
    author = sa.func.coalesce(sa.func.nullif(m.c.from_addr, ""), m.c.from_name)
    shown = sa.exists().where(
        m.c.thread_id == p.c.thread_id, m.c.status == _VISIBLE, author == p.c.address
    )
    conn.execute(p.delete().where(~shown))
    missing = (
        sa.select(m.c.thread_id, author)
        .where(m.c.status == _VISIBLE, author != "")
        .where(~sa.exists().where(p.c.thread_id == m.c.thread_id, p.c.address == author))
        .distinct()
    )
    conn.execute(p.insert().from_select(["thread_id", "address"], missing))
    counted = (
        sa.select(sa.func.count()).select_from(p).where(p.c.thread_id == t.c.id).scalar_subquery()
    )
    wrong = conn.execute(
        sa.select(t.c.id, t.c.list_id).where(
            t.c.merged_into_id.is_(None), t.c.participant_count != counted
        )
    ).all()
    for row in wrong:
        conn.execute(t.update().where(t.c.id == row.id).values(participant_count=counted))
    return {r.list_id for r in wrong}


def downgrade() -> None:
    # Nothing to undo: the code before 0016 reads these dates and counts as well.
    pass
