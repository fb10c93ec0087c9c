"""Moderation over time through every channel, against a model.

tests/unit/listgate/test_moderation_state.py's machine (posts held on a moderated list, the
approve/reject addresses mailed to the moderators, used at any time and more than once, owners'
takedowns) grows the web archive's channels and what changes under a held post before anyone
decides: the moderators' queue buttons (from a page shown before: approve and reject of a post in
any state), the author banned and the ban lifted, a reader's report hiding a published post
(threshold 1) and the moderators putting it back, the list's policy switched between moderated
and open. The real views run (Flask's client) on the same SQLite database as the mail channel.

After every step the model predicts each post's state, the list's counts, and what was mailed:
the moderators heard once of each held post and of each report, each published post was sent to
the subscribers once (however often it was approved or put back), and the author was told once of
each rejection or takedown a moderator gave a reason for.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, dispatch, lists, moderation
from listgate.admission import REFUSED, STORED
from listgate.db import make_engine, transaction
from listgate.ingest import HELD_FOR_MODERATION, ingest
from listgate.mail.parser import parse
from listgate.models import Message, OutboxEntry
from listgate.schema import upgrade
from listgate.states import ListPolicy, PostState
from tests.support.config import make_settings
from tests.support.searches import settings_for
from tests.support.states import foreign_words
from tests.support.web import RecordingSender, notices, session_for
from tests.unit.listgate.test_moderation_state import SECRET, Moderation
from webarchive import create_app

MOD, READER = "mod@example.org", "reader@example.org"
DECIDED = (PostState.REJECTED, PostState.REMOVED)


class Channels(Moderation):
    """Moderation's machine, with the web's buttons, bans, reports and policy changes."""

    def __init__(self, db: sessionmaker[Session], moderator: FlaskClient, reader: FlaskClient):
        super().__init__(db)
        self.moderator, self.reader = moderator, reader
        session_for(moderator, MOD)
        session_for(reader, READER)
        self.policy = ListPolicy.MODERATED
        self.banned: set[str] = set()
        self.author: dict[int, str] = {}  # message pk -> its author's address
        self.held_ever = 0  # posts that arrived held: the moderators heard of each
        self.reports = 0  # reports the moderators heard of
        self.published: set[int] = set()  # posts sent to the subscribers
        self.told = 0  # rejections and takedowns mailed to the author with their reason

    @rule()
    def a_post_arrives(self) -> None:
        self.n += 1
        author = f"a{self.n % 3}@example.org"  # the same authors again: bans meet later posts
        raw = (
            f"From: {author}\r\nSubject: Post {self.n}\r\nMessage-ID: <p{self.n}@x>\r\n"
            f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nText {self.n}\r\n"
        ).encode()
        with transaction(self.db) as session:
            result = ingest(
                session, parse(raw), lists.require(session, "club"), domain="lists.test"
            )
        if author in self.banned:
            assert result.status == REFUSED, result
            return
        pk = result.message_pk
        assert pk is not None, result
        self.author[pk] = author
        if self.policy == ListPolicy.MODERATED:
            assert result.status == HELD_FOR_MODERATION, result
            self.model[pk], self.held_ever = PostState.HELD, self.held_ever + 1
        else:
            assert result.status == STORED, result
            self.model[pk] = PostState.VISIBLE
            self.published.add(pk)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), action=st.sampled_from(["approve", "reject"]), with_reason=st.booleans())
    def a_moderator_replies(self, data: st.DataObject, action: str, with_reason: bool) -> None:
        pk = data.draw(st.sampled_from(sorted(self.model)))
        body = "reject: not for this list\n" if with_reason else "What is this?\n"
        held = self.model[pk] == PostState.HELD
        if action == "approve":
            expected = held and self.author[pk] not in self.banned
        else:
            expected = held and with_reason
        with self.db() as session:
            code = moderation.code(SECRET, action, session.get_one(Message, pk))
        try:
            with transaction(self.db) as session:
                moderation.by_mail(
                    session, SECRET, lists.require(session, "club"), action, code, MOD, body
                )
        except moderation.ModerationError:
            assert not expected, f"{action} by mail of a {self.model[pk]} post was refused"
            return
        assert expected, f"{action} by mail of a {self.model[pk]} post was accepted"
        self._decided(pk, action)

    def _decided(self, pk: int, action: str) -> None:
        if action == "approve":
            if self.model[pk] == PostState.HELD:
                self.published.add(pk)
            self.model[pk] = PostState.VISIBLE
            return
        self.told += 1
        self.model[pk] = (
            PostState.REJECTED if self.model[pk] == PostState.HELD else (PostState.REMOVED)
        )

    @precondition(lambda self: self.model)
    @rule(data=st.data(), action=st.sampled_from(["approve", "reject"]))
    def a_moderator_presses_a_queue_button(self, data: st.DataObject, action: str) -> None:
        pk = data.draw(st.sampled_from(sorted(self.model)))
        state = self.model[pk]
        answer = self.moderator.post(
            f"/moderation/messages/{pk}/{action}",
            data={"csrf_token": "known-csrf-token", "reason": "spam"},
        )
        said = answer.get_data(as_text=True)
        if action == "approve" and state == PostState.HELD and self.author[pk] in self.banned:
            assert answer.status_code == 409 and "is banned from posting" in said, said[:300]
            return
        assert answer.status_code == 303, (action, state, answer.status_code, said[:300])
        if state not in DECIDED and not (action == "approve" and state == PostState.VISIBLE):
            self._decided(pk, action)

    @precondition(lambda self: self.author)
    @rule(data=st.data(), lift=st.booleans())
    def a_moderator_bans_an_author(self, data: st.DataObject, lift: bool) -> None:
        author = data.draw(st.sampled_from(sorted(set(self.author.values()))))
        with self.db() as session:
            list_id = lists.require(session, "club").id
        form = {"csrf_token": "known-csrf-token", "address": author, "reason": "spam"}
        if lift:
            form["action"] = "unban"
        answer = self.moderator.post(f"/moderation/lists/{list_id}/bans", data=form)
        assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
        if lift:
            self.banned.discard(author)
        else:
            self.banned.add(author)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def a_reader_reports_a_post(self, data: st.DataObject) -> None:
        pk = data.draw(st.sampled_from(sorted(self.model)))
        answer = self.reader.post(
            f"/messages/{pk}/report", data={"csrf_token": "known-csrf-token", "reason": "rude"}
        )
        if self.model[pk] != PostState.VISIBLE:
            assert answer.status_code == 404, (self.model[pk], answer.status_code)
            return
        assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
        self.model[pk] = PostState.HIDDEN
        self.reports += 1

    @rule(moderated=st.booleans())
    def an_owner_switches_the_policy(self, moderated: bool) -> None:
        self.policy = ListPolicy.MODERATED if moderated else ListPolicy.OPEN
        with transaction(self.db) as session:
            administration.edit(
                session, lists.require(session, "club"), "cli:owner", policy=self.policy
            )

    @invariant()
    def statuses_and_counts_are_as_predicted(self) -> None:
        with self.db() as session:
            found = dict(session.execute(select(Message.id, Message.status)).all())
            assert found == self.model and foreign_words(session) == {}
            mlist = lists.require(session, "club")
            assert mlist.message_count == sum(
                1 for s in self.model.values() if s is PostState.VISIBLE
            )
            kinds = dict(
                session.execute(
                    select(OutboxEntry.kind, func.count()).group_by(OutboxEntry.kind)
                ).all()
            )
        assert kinds.get(dispatch.NOTIFY_MODERATORS, 0) == self.held_ever + self.reports
        assert kinds.get(dispatch.FANOUT, 0) == len(self.published), "a post sent twice or never"
        assert len(notices(self.db, "rejected")) == self.told


@pytest.mark.long(23)
def test_moderation_through_every_channel_follows_the_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, LISTGATE_REPORT_THRESHOLD="1")
    migrated = make_engine(settings)
    upgrade(migrated)
    migrated.dispose()
    app = create_app(settings)
    app.config.update(TESTING=True, RATE_LIMITS={"report": (10_000, 3600)})
    resources = app.extensions["listgate"]
    resources.sender = RecordingSender()  # nothing leaves: the outbox rows are what was mailed
    db = resources.writer
    try:

        class OnDatabase(Channels):  # hypothesis builds the machine from a class with no arguments
            def __init__(self) -> None:
                super().__init__(db, app.test_client(), app.test_client())

        run_state_machine_as_test(OnDatabase, settings=settings_for(examples=40, steps=14))
    finally:
        resources.engine.dispose()
