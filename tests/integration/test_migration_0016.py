"""Migration 0016 (lists dated by their visible posts, threads' participants the people with a
visible post in them) on an archive holding hidden posts, SQLite and PostgreSQL.

The archive is built from real mail, taken back to 0015 and given what the code before 0016
left (a hidden post's date as its list's last activity, a hidden post's author still counted
among its thread's participants); upgraded, every list and thread shows what its visible posts
say again, the lists' pages are told (their change counters) and a second round changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from listgate import lists, reports
from listgate.db import session_factory, transaction, writer
from listgate.models import MailingList, Message, Thread, ThreadParticipant
from listgate.schema import current, head, upgrade
from tests.integration.test_thread_roots import T0, mail, post
from tests.support.migrations import ENGINES, blank_engine, downgrade, thread_of, thread_state

pytestmark = pytest.mark.integration
ALICE, BOB, CAROL = (
    "Alice <alice@example.org>",
    "Bob <bob@example.org>",
    "Carol <carol@example.org>",
)


def _archive(engine: Engine) -> None:
    """dev: a thread whose last reply (Carol's only post) is hidden and a later thread whose
    only post is hidden (the list's latest); quiet: one post, hidden; fine: visible posts."""
    db = session_factory(writer(engine))
    with transaction(db) as s:
        for name in ("dev", "quiet", "fine"):
            lists.create(s, name)
    post(db, "dev", mail("a@x.test", "Plan", 0, ALICE))
    post(db, "dev", mail("b@x.test", "Re: Plan", 5, BOB, refs="<a@x.test>"))
    post(db, "dev", mail("c@x.test", "Re: Plan", 8, CAROL, refs="<a@x.test> <b@x.test>"))
    post(db, "dev", mail("late@x.test", "Late", 20, BOB))
    post(db, "quiet", mail("q@x.test", "Hello", 3, CAROL))
    post(db, "fine", mail("f@x.test", "Fine", 1, ALICE))
    post(db, "fine", mail("f1@x.test", "Re: Fine", 2, BOB, refs="<f@x.test>"))
    with transaction(db) as s:
        for mid in ("c@x.test", "late@x.test", "q@x.test"):
            reports.hide(s, s.scalars(select(Message).where(Message.message_id == mid)).one())


def _shown(engine: Engine) -> dict[str, Any]:
    """What the lists and threads show: each list's last activity, each thread's participants
    (count and rows)."""
    with session_factory(engine)() as s:
        return {
            "lists": {m.name: m.last_activity for m in s.scalars(select(MailingList))},
            "counts": {t.id: t.participant_count for t in s.scalars(select(Thread))},
            "rows": set(s.execute(select(ThreadParticipant.thread_id, ThreadParticipant.address))),
        }


def _damage(engine: Engine) -> None:
    """What the code before 0016 left: the hidden posts' dates on their lists, their authors
    among their threads' participants."""
    at: dict[str, datetime] = {"dev": T0 + timedelta(hours=20), "quiet": T0 + timedelta(hours=3)}
    left = (("c@x.test", "carol@example.org"), ("late@x.test", "bob@example.org"))
    with engine.begin() as conn:
        for name, when in at.items():
            conn.execute(
                update(MailingList).where(MailingList.name == name).values(last_activity=when)
            )
        for mid, address in (*left, ("q@x.test", "carol@example.org")):
            tid = thread_of(engine, mid)
            conn.execute(insert(ThreadParticipant).values(thread_id=tid, address=address))
            conn.execute(
                update(Thread)
                .where(Thread.id == tid)
                .values(participant_count=Thread.participant_count + 1)
            )


engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)


def test_0016_down_and_up_shows_lists_and_participants_by_visible_posts(engine: Engine) -> None:
    upgrade(engine)
    _archive(engine)
    good = _shown(engine)
    assert good["lists"] == {
        "dev": T0 + timedelta(hours=5),  # Bob's reply: the later posts are hidden
        "quiet": None,
        "fine": T0 + timedelta(hours=2),
    }
    plan, late = thread_of(engine, "a@x.test"), thread_of(engine, "late@x.test")
    assert (good["counts"][plan], good["counts"][late]) == (2, 0)
    downgrade(engine, "0015")
    assert _shown(engine) == good  # nothing to undo
    _damage(engine)
    damaged = _shown(engine)
    assert damaged["lists"]["dev"] == T0 + timedelta(hours=20)
    assert (damaged["counts"][plan], damaged["counts"][late]) == (3, 1)
    broken, before = thread_state(engine)
    assert broken == []  # the thread invariants say nothing of these
    upgrade(engine)
    assert current(engine) == head()
    broken, after = thread_state(engine)
    assert broken == []
    assert _shown(engine) == good
    assert {n: after[n] - before[n] for n in after} == {"dev": 1, "quiet": 1, "fine": 0}
    downgrade(engine, "0015")
    upgrade(engine)  # a right archive stays as it is
    assert thread_state(engine) == ([], after)
    assert _shown(engine) == good
