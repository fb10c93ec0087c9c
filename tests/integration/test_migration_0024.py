"""Migration 0024 (data only) on SQLite and PostgreSQL: an archive purged by the code before the
purge blanked the lower-cased subjects (they and the starter's name kept, as that code left them)
holds none of the purged words after the upgrade, and still threads new mail as before; a post
taken down without a purge, and a thread whose own subject stays, keep theirs; down changes
nothing; a second round does the same."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from listgate import lists
from listgate.db import session_factory, transaction, writer
from listgate.models import Message, Thread
from listgate.removal import find, remove
from listgate.schema import current, head, upgrade
from tests.support.factories import make_mail, post
from tests.support.leftovers import rows_holding
from tests.support.migrations import ENGINES, before, blank_engine, downgrade

pytestmark = pytest.mark.integration

engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)
SECRET, LEAKER = "zanzibarquokka", "Wilhelmina Quibblesworth"
KEPT = "wallabyplan"  # in a post taken down without a purge: its tombstone keeps its words


def _old_purge(engine: Engine, msgid: str) -> None:
    """A purge as the code before 0024 left it: everything deleted but the lower-cased subjects
    of the post and of the thread it names, and the name of the thread's starter."""
    db = session_factory(writer(engine))
    with transaction(db) as s:
        posts = find(s, msgid)
        kept = [(m.id, m.subject_norm, m.thread_subject_norm) for m in posts]
        threads = [s.get_one(Thread, m.thread_id) for m in posts]
        named = [(t.id, t.subject_norm, t.starter_name) for t in threads]
        remove(s, posts, "legal request", "mod@example.org", purge=True)
        for pk, norm, thread_norm in kept:
            s.execute(
                update(Message)
                .where(Message.id == pk)
                .values(subject_norm=norm, thread_subject_norm=thread_norm)
            )
        for tid, norm, starter in named:
            s.execute(update(Thread).where(Thread.id == tid).values(subject_norm=norm))
            s.execute(
                update(Thread)
                .where(Thread.id == tid, Thread.root_message_pk.in_([k[0] for k in kept]))
                .values(starter_name=starter)
            )


def _threads(engine: Engine) -> dict[str, tuple[str, str, str]]:
    """Each thread's root Message-ID: (subject, lower-cased subject, starter)."""
    with session_factory(engine)() as s:
        rows = s.execute(
            select(Message.message_id, Thread.subject, Thread.subject_norm, Thread.starter_name)
            .join(Message, Message.id == Thread.root_message_pk)
            .order_by(Thread.id)
        )
        return {mid: (subj, norm, starter) for mid, subj, norm, starter in rows}


def test_0024_blanks_what_old_purges_left_and_nothing_else(engine: Engine) -> None:
    upgrade(engine)
    previous = before("0024")
    downgrade(engine, previous)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
    post(db, make_mail("Plans", "Root.\n", msgid="root@x"))
    post(
        db, make_mail(f"The {SECRET} leak (was: Plans)", "x\n", msgid="mid@x", in_reply_to="root@x")
    )
    post(db, make_mail(f"{SECRET.title()} alone", "y\n", msgid="own@x", sender=f"{LEAKER} <l@x>"))
    post(db, make_mail("Re: your post", "z\n", msgid="re@x", in_reply_to="own@x"))
    post(db, make_mail(f"{KEPT.title()} notes", "w\n", msgid="kept@x", sender="Kit <k@x>"))
    _old_purge(engine, "mid@x")
    _old_purge(engine, "own@x")
    with transaction(db) as s:
        remove(s, find(s, "kept@x"), "off topic", "mod@example.org")
    left = rows_holding(engine, SECRET) + rows_holding(engine, LEAKER)
    assert len(left) >= 3, "the old purge's leftovers are there before the upgrade"

    for _ in range(2):
        upgrade(engine)
        assert current(engine) == head()
        for word in (SECRET, LEAKER):
            left = rows_holding(engine, word)
            assert left == [], "\n".join(left)
        assert _threads(engine) == {
            "root@x": ("Plans", "plans", "Alice Example"),
            "own@x": ("(removed)", "", ""),
            "kept@x": (f"{KEPT.title()} notes", f"{KEPT} notes", "Kit"),
        }
        downgrade(engine, previous)
        assert current(engine) == previous
        assert rows_holding(engine, SECRET) == []

    upgrade(engine)
    # new mail on the purged subject starts its own thread; a reply by subject still finds Plans
    post(db, make_mail(f"Re: {SECRET} alone", "n\n", msgid="new@x"))
    post(db, make_mail("Re: Plans", "p\n", msgid="late@x"))
    with session_factory(engine)() as s:
        by_id = dict(s.execute(select(Message.message_id, Message.thread_id)).all())
    assert by_id["new@x"] not in (by_id["own@x"], by_id["root@x"])
    assert by_id["late@x"] == by_id["root@x"]
