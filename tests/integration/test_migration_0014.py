"""Migration 0014 (threads.subject_orphan dropped) on an archive that holds threads.

Down to 0013 the column comes back (false on every thread) and up again it goes; the threads,
their posts and their counts stay, and the archive takes a new thread and a reply after the trip.
"""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text

from listgate.db import session_factory, transaction, writer
from listgate.lists import create
from listgate.models import Message, Thread
from listgate.schema import alembic_config, current, head, upgrade
from tests.integration.test_migration_0013 import new_engine
from tests.support.factories import make_mail, post

pytestmark = pytest.mark.integration
__all__ = ["new_engine"]  # the fixture: a new, empty database of each kind


def _threads(engine: Engine) -> list[tuple[int, str, int, int | None]]:
    with session_factory(engine)() as s:
        return [
            (t.id, t.subject, t.message_count, t.root_message_pk)
            for t in s.scalars(select(Thread).order_by(Thread.id))
        ]


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("threads")}


def test_0014_down_and_up_keeps_the_threads(new_engine: Engine) -> None:
    upgrade(new_engine)
    db = session_factory(writer(new_engine))
    with transaction(db) as s:
        create(s, "dev")
    post(db, make_mail("First", msgid="t1@example.org"))
    post(db, make_mail("Re: First", msgid="t2@example.org", in_reply_to="t1@example.org"))
    post(db, make_mail("Second", msgid="t3@example.org"))
    threads = _threads(new_engine)
    assert [t[1:3] for t in threads] == [("First", 2), ("Second", 1)]
    assert "subject_orphan" not in _columns(new_engine)
    cfg = alembic_config()
    before = ScriptDirectory.from_config(cfg).get_revision("0014").down_revision
    assert isinstance(before, str)
    with new_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, before)
    assert "subject_orphan" in _columns(new_engine)
    with new_engine.connect() as conn:
        assert {
            bool(v) for v in conn.execute(text("SELECT subject_orphan FROM threads")).scalars()
        } == {False}
    assert _threads(new_engine) == threads
    upgrade(new_engine)
    assert current(new_engine) == head()
    assert "subject_orphan" not in _columns(new_engine)
    assert _threads(new_engine) == threads
    post(db, make_mail("Re: Second", msgid="t4@example.org", in_reply_to="t3@example.org"))
    post(db, make_mail("Third", msgid="t5@example.org"))
    with session_factory(new_engine)() as s:
        assert (
            s.scalar(select(Message.thread_id).where(Message.message_id == "t4@example.org"))
            == threads[1][0]
        )
    assert [t[1:3] for t in _threads(new_engine)] == [("First", 2), ("Second", 2), ("Third", 1)]
