"""Moderation over time: a model predicts what each approve, reject (by mail, reused or not) and
takedown does, and what the list's count and the moderators' mail must be after every step.

One SQLite database for the whole search, emptied before each example (a new migrated database
per example cost three quarters of a second each, most of this test's time).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists, moderation, removal
from listgate.db import Base, make_engine, session_factory, transaction, writer
from listgate.ingest import HELD_FOR_MODERATION, ingest
from listgate.lists import ListError
from listgate.mail.parser import parse
from listgate.models import Message, OutboxEntry
from listgate.schema import upgrade
from listgate.states import PostState
from tests.support.config import make_settings
from tests.support.searches import settings_for
from tests.support.states import foreign_words

SECRET = "test-secret-key-0123456789"


class Moderation(RuleBasedStateMachine):
    """Posts to a moderated list go through held -> visible / rejected -> removed."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        super().__init__()
        self.db = db
        with transaction(db) as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(delete(table))
            lists.create(session, "club", policy="moderated", moderators="mod@example.org")
        self.model: dict[int, PostState] = {}  # message pk -> predicted status
        self.n = 0

    @rule()
    def a_post_arrives(self) -> None:
        self.n += 1
        raw = (
            f"From: a{self.n}@example.org\r\nSubject: Post {self.n}\r\n"
            f"Message-ID: <p{self.n}@x>\r\n"
            f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nText {self.n}\r\n"
        ).encode()
        with transaction(self.db) as session:
            result = ingest(
                session, parse(raw), lists.require(session, "club"), domain="lists.test"
            )
        assert result.status == HELD_FOR_MODERATION and result.message_pk is not None
        self.model[result.message_pk] = PostState.HELD

    def _code(self, pk: int, action: str) -> str:
        with self.db() as session:
            return moderation.code(SECRET, action, session.get_one(Message, pk))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), action=st.sampled_from(["approve", "reject"]), with_reason=st.booleans())
    def a_moderator_replies(self, data: st.DataObject, action: str, with_reason: bool) -> None:
        pk = data.draw(st.sampled_from(sorted(self.model)))
        body = "reject: not for this list\n" if with_reason else "What is this?\n"
        expected = self.model[pk] == PostState.HELD and (action == "approve" or with_reason)
        code = self._code(pk, action)
        try:
            with transaction(self.db) as session:
                moderation.by_mail(
                    session,
                    SECRET,
                    lists.require(session, "club"),
                    action,
                    code,
                    "mod@example.org",
                    body,
                )
        except moderation.ModerationError:
            assert not expected, f"{action} of a {self.model[pk]} post was refused"
            return
        assert expected, f"{action} of a {self.model[pk]} post was accepted"
        self.model[pk] = PostState.VISIBLE if action == "approve" else PostState.REJECTED

    @precondition(lambda self: self.model)
    @rule(data=st.data(), purge=st.booleans())
    def an_owner_takes_a_post_down(self, data: st.DataObject, purge: bool) -> None:
        pk = data.draw(st.sampled_from(sorted(self.model)))
        with transaction(self.db) as session:
            msg = session.get_one(Message, pk)
            try:
                removal.remove(session, [msg], "off topic", "cli:owner", purge)
            except ListError as exc:  # pragma: no cover - nothing here should refuse
                raise AssertionError(str(exc)) from None
        self.model[pk] = PostState.REMOVED

    @invariant()
    def statuses_and_counts_are_as_predicted(self) -> None:
        with self.db() as session:
            found = dict(session.execute(select(Message.id, Message.status)).all())
            assert found == self.model and foreign_words(session) == {}
            visible = sum(1 for s in self.model.values() if s is PostState.VISIBLE)
            mlist = lists.require(session, "club")
            assert mlist.message_count == visible
            # Only threads with a published post are the list's
            # threads (held, rejected, removed are not).
            published = session.scalars(
                select(Message.thread_id).where(Message.status == PostState.VISIBLE)
            ).all()
            assert mlist.thread_count == len(set(published))
            mails = session.scalar(
                select(func.count())
                .select_from(OutboxEntry)
                .where(OutboxEntry.kind == dispatch.NOTIFY_MODERATORS)
            )
            assert mails == len(self.model)  # the moderators heard of each post exactly once


@pytest.mark.long(31)
def test_moderation_follows_the_model(tmp_path: Path) -> None:
    engine = make_engine(make_settings(tmp_path))
    upgrade(engine)
    db = session_factory(writer(engine))
    try:

        class OnDatabase(
            Moderation
        ):  # hypothesis builds the machine from a class with no arguments
            def __init__(self) -> None:
                super().__init__(db)

        run_state_machine_as_test(OnDatabase, settings=settings_for(examples=40, steps=12))
    finally:
        engine.dispose()
