"""Migration 0012 (thread roots) on an archive that holds posts, SQLite and PostgreSQL.

Threads are merged by real mail (out of order, with a held post), the archive is taken back to
the revision before 0012 and given the roots the code before 0012 left (merged-away threads
naming a message of their survivor, a survivor with no root and a held post's subject, a thread
started by a reply), then upgraded: every thread passes the invariants again, and a second
round changes nothing.
"""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, select, update

from listgate import lists, reports
from listgate.db import session_factory, transaction, writer
from listgate.models import MailingList, Message, Thread
from listgate.schema import alembic_config, current, head, upgrade
from tests.integration.test_thread_roots import mail, post
from tests.support import roots
from tests.support.migrations import ENGINES, blank_engine, downgrade

pytestmark = pytest.mark.integration
EVE, MOD = "Eve <eve@example.org>", "Mod <mod@example.org>"


def _archive(engine: Engine) -> None:
    """Two lists: a held post's thread merged into a published one, a thread whose start is
    hidden; replies merged out of order."""
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "club", policy="moderated", moderators="mod@example.org")
        lists.create(s, "dev")
    post(db, "club", mail("h@x.test", "Secret plan", 0, EVE))
    post(db, "club", mail("v@x.test", "Public", 1, MOD))
    post(db, "club", mail("r@x.test", "Re: Public", 2, EVE, refs="<h@x.test> <v@x.test>"))
    post(db, "club", mail("o@x.test", "Other", 3, MOD))
    post(db, "club", mail("o1@x.test", "Re: Other", 4, MOD, refs="<o@x.test>"))
    with transaction(db) as s:  # a start hidden later stays the root (its tombstone's place)
        reports.hide(s, s.scalars(select(Message).where(Message.message_id == "o@x.test")).one())
    for raw in (
        mail("b@x.test", "Re: Plan", 3, MOD, refs="<a@x.test> <hole1@x.test>"),
        mail("c@x.test", "Re: Plan", 1, MOD, refs="<hole2@x.test>"),
        mail("e@x.test", "Re: Plan", 4, MOD, refs="<hole1@x.test> <hole2@x.test>"),
        mail("a@x.test", "Plan", 0, MOD),
    ):
        post(db, "dev", raw, origin="import")


def _pk(engine: Engine, mid: str) -> int:
    with session_factory(engine)() as s:
        return s.scalars(select(Message.id).where(Message.message_id == mid)).one()


def _threads(engine: Engine) -> dict[int, tuple[int | None, str, str]]:
    with session_factory(engine)() as s:
        return {
            t.id: (t.root_message_pk, t.subject, t.starter_name) for t in s.scalars(select(Thread))
        }


def _state(engine: Engine) -> tuple[list[str], dict[str, int]]:
    """(what breaks the invariants, each list's change counter)."""
    with session_factory(engine)() as s:
        mlists = s.scalars(select(MailingList)).all()
        broken = [p for mlist in mlists for p in roots.problems(s, mlist.id)]
        return broken, {mlist.name: mlist.changes for mlist in mlists}


def _damage(engine: Engine) -> None:
    """The roots the code before 0012 left on this archive."""
    v, a = _pk(engine, "v@x.test"), _pk(engine, "a@x.test")
    with engine.begin() as conn:
        survivor = conn.execute(select(Message.thread_id).where(Message.id == v)).scalar_one()
        plan = conn.execute(select(Message.thread_id).where(Message.id == a)).scalar_one()
        for live, root in ((survivor, v), (plan, a)):  # a merged-away thread kept its old root
            conn.execute(
                update(Thread).where(Thread.merged_into_id == live).values(root_message_pk=root)
            )
        conn.execute(  # the older thread held only Eve's post: its subject, no root
            update(Thread)
            .where(Thread.id == survivor)
            .values(root_message_pk=None, subject="Secret plan", starter_name="Eve")
        )
        conn.execute(  # a reply counted as the start
            update(Thread)
            .where(Thread.id == plan)
            .values(root_message_pk=_pk(engine, "b@x.test"), subject="Re: Plan")
        )


def _down_and_up(engine: Engine) -> None:
    upgrade(engine)
    _archive(engine)
    assert _state(engine)[0] == []
    good = _threads(engine)
    cfg = alembic_config()
    previous = ScriptDirectory.from_config(cfg).get_revision("0012").down_revision
    assert isinstance(previous, str)
    downgrade(engine, previous)
    assert _threads(engine) == good  # nothing to undo
    _damage(engine)
    broken, before = _state(engine)
    assert len(broken) == 4, broken  # a merged-away thread and a live thread on each list
    upgrade(engine)
    assert current(engine) == head()
    broken, after = _state(engine)
    assert broken == [] and _threads(engine) == good
    assert {n: after[n] - before[n] for n in after} == {"club": 1, "dev": 1}
    downgrade(engine, previous)
    upgrade(engine)  # a right archive stays as it is
    assert _state(engine) == ([], after) and _threads(engine) == good


engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)


def test_0012_down_and_up_repairs_the_roots(engine: Engine) -> None:
    _down_and_up(engine)
