"""Posts purged before the purge blanked their lower-cased subjects lose them now (data only)

Revision ID: 0024
Revises: 0023

A purge (removals.purged) deleted a post's subject, text and name, and renamed the thread named
after it "(removed)", but kept the subject lower-cased in messages.subject_norm and
thread_subject_norm, in threads.subject_norm, and the name of a thread's starter in
threads.starter_name. The purge now blanks them; this blanks what earlier purges left:
- a thread started by a purged post: its lower-cased subject and its starter's name;
- a thread the purge renamed "(removed)" after a purged reply: its lower-cased subject, when it
  is that reply's (a thread that still has its own subject keeps it);
- each purged post's two lower-cased subjects (last: the threads' are matched against them).
Down does nothing: the words are gone, as the purge promised.
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

PURGED = "SELECT message_pk FROM removals WHERE purged = :yes"
STEPS = (
    f"UPDATE threads SET subject_norm = '', starter_name = '' WHERE root_message_pk IN ({PURGED})",
    "UPDATE threads SET subject_norm = '' WHERE subject = '(removed)' AND subject_norm <> ''"
    " AND EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = threads.id"
    f" AND m.id IN ({PURGED})"
    " AND threads.subject_norm IN (m.subject_norm, m.thread_subject_norm))",
    "UPDATE messages SET subject_norm = '', thread_subject_norm = ''"
    f" WHERE id IN ({PURGED}) AND (subject_norm <> '' OR thread_subject_norm <> '')",
)


def upgrade() -> None:
    conn = op.get_bind()
    yes = sa.bindparam("yes", True, type_=sa.Boolean())
    for step in STEPS:
        conn.execute(sa.text(step).bindparams(yes))


def downgrade() -> None:
    """Nothing to put back: the purged words are not kept anywhere."""
