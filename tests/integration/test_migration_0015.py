"""Migration 0015 (thread dates from visible posts) on an archive that holds held, hidden and
visible posts, SQLite and PostgreSQL.

The archive is built from real mail, taken back to the revision before 0015 and given the dates
the code before 9f27d8e and 0015 left (a held post's date as a thread's last activity or start, a
hidden reply's date as its last activity); upgraded, every live thread is dated by its visible
posts again, the list's pages are told (its change counter), threads showing nothing keep their
dates, and a second round changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, select, update

from listgate import lists, reports
from listgate.db import session_factory, transaction, writer
from listgate.models import Message, Thread
from listgate.schema import alembic_config, current, head, upgrade
from tests.integration.test_thread_roots import T0, mail, post
from tests.support.migrations import ENGINES, blank_engine, downgrade, thread_of, thread_state

pytestmark = pytest.mark.integration
EVE, MOD = "Eve <eve@example.org>", "Mod <mod@example.org>"
MONTH = 24 * 30


def _archive(engine: Engine) -> None:
    """Threads started by held posts (dated a month after and a month before their published
    answers), a thread whose last reply is hidden, a thread of a held post alone, a list of
    visible posts only."""
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "club", policy="moderated", moderators="mod@example.org")
        lists.create(s, "dev")
    post(db, "club", mail("late@x.test", "Question", MONTH, EVE))
    post(db, "club", mail("a1@x.test", "Re: Question", 0, MOD, refs="<late@x.test>"))
    post(db, "club", mail("early@x.test", "Offer", -MONTH, EVE))
    post(db, "club", mail("a2@x.test", "Re: Offer", 1, MOD, refs="<early@x.test>"))
    post(db, "club", mail("o@x.test", "Other", 2, MOD))
    post(db, "club", mail("o1@x.test", "Re: Other", 10, MOD, refs="<o@x.test>"))
    with transaction(db) as s:
        reports.hide(s, s.scalars(select(Message).where(Message.message_id == "o1@x.test")).one())
    post(db, "club", mail("alone@x.test", "Spam", 20, EVE))
    post(db, "dev", mail("d@x.test", "Plan", 3, MOD))
    post(db, "dev", mail("d1@x.test", "Re: Plan", 4, MOD, refs="<d@x.test>"))


def _dates(engine: Engine) -> dict[int, tuple[object, object]]:
    with session_factory(engine)() as s:
        return {t.id: (t.created_at, t.last_activity) for t in s.scalars(select(Thread))}


def _damage(engine: Engine) -> None:
    """The dates the code before 9f27d8e (held posts) and 0015 (hidden posts) left."""
    at = {h: T0 + timedelta(hours=h) for h in (MONTH, -MONTH, 10, 30)}
    with engine.begin() as conn:
        for mid, values in (
            ("a1@x.test", {"last_activity": at[MONTH]}),  # the held question's date
            ("a2@x.test", {"created_at": at[-MONTH]}),  # the held offer's date
            ("o@x.test", {"last_activity": at[10]}),  # the hidden reply's date
            ("alone@x.test", {"last_activity": at[30]}),  # shows nothing: not a list's thread
        ):
            tid = thread_of(engine, mid)
            conn.execute(update(Thread).where(Thread.id == tid).values(**values))


def _before_0015() -> str:
    previous = ScriptDirectory.from_config(alembic_config()).get_revision("0015").down_revision
    assert isinstance(previous, str)
    return previous


engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)


def test_0015_down_and_up_dates_threads_by_their_visible_posts(engine: Engine) -> None:
    upgrade(engine)
    _archive(engine)
    assert thread_state(engine)[0] == []
    good = _dates(engine)
    previous = _before_0015()
    downgrade(engine, previous)
    assert _dates(engine) == good  # nothing to undo
    _damage(engine)
    broken, before = thread_state(engine)
    assert len(broken) == 3, broken
    alone = thread_of(engine, "alone@x.test")
    damaged_alone = _dates(engine)[alone]
    upgrade(engine)
    assert current(engine) == head()
    broken, after = thread_state(engine)
    assert broken == []
    assert _dates(engine) == {**good, alone: damaged_alone}  # a thread showing nothing: as it was
    assert {n: after[n] - before[n] for n in after} == {"club": 1, "dev": 0}
    downgrade(engine, previous)
    upgrade(engine)  # a right archive stays as it is
    assert thread_state(engine) == ([], after)
    assert _dates(engine) == {**good, alone: damaged_alone}
