"""Requests to join over time: a model of what moderators and owners decide while people ask,
confirm, change their minds, leave and are taken off, and the list's policy changes.

Hypothesis drives random sequences of: a person asks on the web for every post or the digest
(a confirmation link is mailed), confirms by the link, subscribes at once when signed in,
leaves; an administrator subscribes someone, invites them (`--invite`) or takes them off; a
moderator approves or refuses every request an address has (`listgate requests
approve|refuse`); the owner switches the list between open and members-only, public and
private (`listgate lists edit`). The model predicts every
subscription row's state; after each step the rows, the requests waiting, and the mails queued
(a confirmation per request, a welcome per way in, an answer per refusal) must match it, and no
decision on what `requests show` lists may fail.

One SQLite database for the whole search, emptied before each example.
How long it searches: tests/support/searches.py.
"""

from __future__ import annotations

import json
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
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, approvals, confirmations, dispatch, lists, subscriptions
from listgate.db import Base, make_engine, session_factory, transaction, writer
from listgate.models import MailingList, OutboxEntry, Subscription
from listgate.policy import needs_approval
from listgate.schema import upgrade
from listgate.states import ListPolicy, SubscriptionKind, SubscriptionState
from tests.support.config import make_settings
from tests.support.searches import TIMEOUT, settings_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

SECRET = "test-secret-key-0123456789"
PEOPLE = ("kim@example.org", "lee@example.net", "pat@example.com")
KINDS = (SubscriptionKind.LIST, SubscriptionKind.DIGEST)
PENDING, AWAITING, ACTIVE, ENDED = (
    SubscriptionState.PENDING,
    SubscriptionState.AWAITING,
    SubscriptionState.ACTIVE,
    SubscriptionState.ENDED,
)
ASKS = 5  # confirmation mails one address may get in 15 minutes (confirmations.CONFIRM_LIMIT)

people = st.sampled_from(PEOPLE)
kinds = st.sampled_from(KINDS)


def other(kind: str) -> str:
    return SubscriptionKind.DIGEST if kind == SubscriptionKind.LIST else SubscriptionKind.LIST


class Requests(RuleBasedStateMachine):
    """Subscription rows of one list (every post or the digest) through requests and decisions."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        super().__init__()
        self.db = db
        with transaction(db) as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(delete(table))
            lists.create(session, "dev", policy=ListPolicy.MEMBERS, moderators="mod@example.org")
        self.policy, self.private = ListPolicy.MEMBERS, False
        self.rows: dict[tuple[str, str], SubscriptionState] = {}
        self.approved: set[tuple[str, str]] = set()  # pending rows a moderator approved already
        self.order: list[tuple[str, str]] = []  # rows in the order they were made (their ids)
        self.links: dict[tuple[str, str], str] = {}
        self.asks = dict.fromkeys(PEOPLE, 0)
        # mails queued that the model predicts, by template
        self.mails = {"confirm": 0, "welcome": 0, "refused": 0, "goodbye": 0}

    # -- the model's own rules ---------------------------------------------------------------

    def needs(self) -> bool:
        return self.private or self.policy == ListPolicy.MEMBERS

    def member(self, who: str) -> bool:
        return any(self.rows.get((who, k)) == ACTIVE for k in KINDS)

    def set(self, key: tuple[str, str], status: SubscriptionState) -> None:
        if key not in self.rows:
            self.order.append(key)
        self.rows[key] = status
        if status != PENDING:
            self.approved.discard(key)

    def activate(self, who: str, kind: str) -> None:
        """Active now; the other choice ends, whatever it was (subscriptions._end_other_choice)."""
        self.set((who, kind), ACTIVE)
        if self.rows.get((who, other(kind)), ENDED) != ENDED:
            self.set((who, other(kind)), ENDED)

    def wait(self, who: str, kind: str) -> None:
        """Waiting for a moderator; a request of the other choice ends: the latest one counts."""
        self.set((who, kind), AWAITING)
        if self.rows.get((who, other(kind))) in (PENDING, AWAITING):
            self.set((who, other(kind)), ENDED)

    def start(self, who: str, kind: str, by_admin: bool = False) -> None:
        """What subscriptions.start does to the row (who, kind)."""
        key, status = (who, kind), self.rows.get((who, kind))
        if status == ACTIVE or by_admin or key in self.approved:
            self.activate(who, kind)
        elif self.needs() and not self.member(who):
            self.wait(who, kind)
        else:
            self.activate(who, kind)

    def waiting(self, who: str) -> list[tuple[str, str]]:
        return [k for k in self.order if k[0] == who and self.rows[k] in (PENDING, AWAITING)]

    # -- the service, step by step -----------------------------------------------------------

    def _list(self, session: Session) -> MailingList:
        return lists.require(session, "dev")

    @precondition(lambda self: min(self.asks.values()) < ASKS)
    @rule(who=people, kind=kinds)
    def a_person_asks_on_the_web(self, who: str, kind: str) -> None:
        if self.asks[who] >= ASKS:
            return
        with transaction(self.db) as session:
            outcome = confirmations.request(
                session, self._list(session), who, secret=SECRET, base_url="", domain="x", kind=kind
            )
            mailed = [json.loads(e.payload or "{}") for e in outcome.outbox]
        if self.rows.get((who, kind)) in (ACTIVE, AWAITING, PENDING):
            assert mailed == [], outcome.message  # asked already (a pending one minutes ago)
            return
        (confirm,) = mailed
        assert confirm["template"] == "confirm"
        self.links[(who, kind)] = confirm["link"].rpartition("/confirm/")[2]
        self.asks[who] += 1
        self.mails["confirm"] += 1
        self.set((who, kind), PENDING)
        self.approved.discard((who, kind))

    @precondition(lambda self: min(self.asks.values()) < ASKS)
    @rule(who=people, kind=kinds)
    def an_administrator_invites(self, who: str, kind: str) -> None:
        """`listgate subscribe ADDRESS --list dev [--digest] --invite`."""
        if self.asks[who] >= ASKS:
            return
        with transaction(self.db) as session:
            outcome = confirmations.request(
                session,
                self._list(session),
                who,
                secret=SECRET,
                base_url="",
                domain="x",
                kind=kind,
                channel=subscriptions.ADMIN,
                invited_by="admin",
            )
            mailed = [json.loads(e.payload or "{}") for e in outcome.outbox]
        key, status = (who, kind), self.rows.get((who, kind))
        if status == ACTIVE:
            assert mailed == [], outcome.message
        elif status == AWAITING:  # confirmed already: in now
            assert [m["template"] for m in mailed] == ["welcome"], outcome.message
            self.activate(who, kind)
            self.mails["welcome"] += 1
        elif status == PENDING:  # its confirmation went minutes ago: approved in advance
            assert mailed == [], outcome.message
            self.approved.add(key)
        else:
            (confirm,) = mailed
            assert confirm["template"] == "confirm" and confirm["invited"]
            self.links[key] = confirm["link"].rpartition("/confirm/")[2]
            self.asks[who] += 1
            self.mails["confirm"] += 1
            self.set(key, PENDING)
            self.approved.add(key)

    @rule(who=people, kind=kinds)
    def a_person_confirms_by_the_link(self, who: str, kind: str) -> None:
        if self.rows.get((who, kind)) != PENDING:
            return
        with transaction(self.db) as session:
            outcome = confirmations.confirm_token(session, SECRET, self.links[(who, kind)])
            (said,) = [json.loads(e.payload or "{}")["template"] for e in outcome.outbox]
        self.start(who, kind)
        assert said == ("welcome" if self.rows[(who, kind)] == ACTIVE else "awaiting"), said
        self.mails["welcome"] += said == "welcome"

    @rule(who=people, kind=kinds)
    def a_signed_in_person_subscribes(self, who: str, kind: str) -> None:
        action = subscriptions.EVERY_POST if kind == SubscriptionKind.LIST else subscriptions.DIGEST
        with transaction(self.db) as session:
            subscriptions.change(session, self._list(session), who, action, channel="web")
        self.start(who, kind)

    @rule(who=people, kind=kinds)
    def an_administrator_subscribes(self, who: str, kind: str) -> None:
        with transaction(self.db) as session:
            lists.subscribe(session, self._list(session), who, kind)
        # a request waiting for a moderator was promised a mail once it is in
        self.mails["welcome"] += self.rows.get((who, kind)) == AWAITING
        self.start(who, kind, by_admin=True)

    @rule(who=people, by_admin=st.booleans())
    def a_person_leaves_or_is_taken_off(self, who: str, by_admin: bool) -> None:
        with transaction(self.db) as session:
            outcome = subscriptions.change(
                session,
                self._list(session),
                who,
                subscriptions.LEAVE,
                channel=subscriptions.ADMIN if by_admin else subscriptions.WEB,
            )
        self.mails["goodbye"] += len(outcome.outbox)
        assert len(outcome.outbox) == int(self.member(who))
        for kind in KINDS:
            if self.rows.get((who, kind), ENDED) != ENDED:
                self.set((who, kind), ENDED)

    @rule(who=people, approve=st.booleans())
    def a_moderator_decides_every_request_of_an_address(self, who: str, approve: bool) -> None:
        """`listgate requests approve|refuse ADDRESS --list dev`."""
        with transaction(self.db) as session:
            subs = approvals.requests_of(session, self._list(session), who)
            assert [(s.address, s.kind) for s in subs] == self.waiting(who)
            outcomes = [
                approvals.approve(session, sub, "mod@example.org")
                if approve
                else approvals.refuse(session, sub, "mod@example.org", "no")
                for sub in approvals.still_waiting(subs)
            ]
            said = [json.loads(e.payload or "{}")["template"] for o in outcomes for e in o.outbox]
        expected = []
        for key in self.waiting(who):
            if self.rows[key] not in (PENDING, AWAITING):
                continue  # ended by the decision before it
            if not approve:  # an address never confirmed is not mailed: nobody asked from it
                if self.rows[key] == AWAITING:
                    expected.append("refused")
                self.set(key, ENDED)
            elif self.rows[key] == PENDING:
                self.approved.add(key)
            else:
                self.activate(*key)
                expected.append("welcome")
        assert said == expected
        self.mails["welcome"] += expected.count("welcome")
        self.mails["refused"] += expected.count("refused")

    @rule(policy=st.sampled_from((ListPolicy.OPEN, ListPolicy.MEMBERS)), private=st.booleans())
    def the_owner_changes_the_policy(self, policy: str, private: bool) -> None:
        with transaction(self.db) as session:
            administration.edit(
                session, self._list(session), "cli:owner", policy=policy, private=private
            )
        needed = self.needs()
        self.policy, self.private = ListPolicy(policy), private
        if needed and not self.needs():
            for key in [k for k in self.order if self.rows[k] == AWAITING]:
                self.activate(*key)
                self.mails["welcome"] += 1

    # -- what must hold after every step -----------------------------------------------------

    @invariant()
    def the_rows_requests_and_mails_are_as_predicted(self) -> None:
        with self.db() as session:
            mlist = self._list(session)
            assert needs_approval(mlist) == self.needs()
            found = {
                (s.address, s.kind): s.status
                for s in session.scalars(select(Subscription).order_by(Subscription.id))
            }
            assert found == self.rows
            # in the order of their last asking (created_at), not of their rows: compared as sets
            waiting = [(s.address, s.kind) for s in approvals.waiting(session, [mlist.id])]
            assert sorted(waiting) == sorted(k for k in self.order if self.rows[k] == AWAITING)
            for who in PEOPLE:
                assert sum(self.rows.get((who, k)) == ACTIVE for k in KINDS) <= 1
            queued = [
                json.loads(p or "{}").get("template")
                for p in session.scalars(
                    select(OutboxEntry.payload).where(OutboxEntry.kind == dispatch.SEND_NOTICE)
                )
            ]
            assert {t: queued.count(t) for t in self.mails} == self.mails


@pytest.mark.long(44)
def test_requests_follow_the_model(tmp_path: Path) -> None:
    engine = make_engine(make_settings(tmp_path))
    upgrade(engine)
    db = session_factory(writer(engine))
    try:

        class OnDatabase(Requests):  # hypothesis builds the machine from a class with no arguments
            def __init__(self) -> None:
                super().__init__(db)

        run_state_machine_as_test(OnDatabase, settings=settings_for(examples=60, steps=25))
    finally:
        engine.dispose()
