"""A model of what the gateway answers at DATA while a list's facts change, checked against the
real writer's batch step on PostgreSQL (gateway.answers.Answerer and its gateway.factcache).

Hypothesis interleaves bans and their lifting, subscriptions and their end, moderators and
policy changes (each committed as the command line or the web commits it) with batches of posts
from three people. The model predicts each post's reply from the facts committed before the
batch; a change committed while a batch is being decided (after its decision, before its append)
may count or not, but for the whole batch at once.

How long it searches: tests/support/searches.py.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.answers import Answer, Arrival, Job, Result
from gateway.handler import GatewayHandler
from listgate import lists
from listgate.db import transaction
from listgate.models import Ban, MailingList, Subscription
from listgate.states import ListPolicy, SubscriptionState
from tests.integration.test_spool_postgres import dev_gate as dev_gate  # the fixture
from tests.support.searches import TIMEOUT, settings_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

PEOPLE = ("ann@example.org", "bob@example.org", "cat@example.net")
POLICIES = (ListPolicy.OPEN, ListPolicy.MEMBERS, ListPolicy.MODERATED)
_SERIAL = itertools.count()


class Facts:
    """The model: what the facts are, and the reply they give a post."""

    def __init__(self) -> None:
        self.policy = ListPolicy.OPEN
        self.banned: set[str] = set()
        self.members: set[str] = set()
        self.moderators: set[str] = set()

    def copy(self) -> Facts:
        other = Facts()
        other.policy, other.banned = self.policy, set(self.banned)
        other.members, other.moderators = set(self.members), set(self.moderators)
        return other

    def reply(self, sender: str) -> str:
        if sender in self.banned:
            return (
                f"550 5.7.1 <dev@lists.test>: not accepted: {sender} is banned from posting"
                " to this list"
            )
        stored = (
            self.policy == ListPolicy.OPEN
            or sender in self.moderators
            or (self.policy == ListPolicy.MEMBERS and sender in self.members)
        )
        return "250 2.0.0 OK: " + ("stored" if stored else "held for moderation")


Change = tuple[str, str]  # (what, whom or which policy)
CHANGES = st.one_of(
    st.tuples(
        st.sampled_from(("ban", "unban", "join", "leave", "mod", "unmod")), st.sampled_from(PEOPLE)
    ),
    st.tuples(st.just("policy"), st.sampled_from([p.value for p in POLICIES])),
)


class Gateway(RuleBasedStateMachine):
    """The handler's writer step on one list; facts changed through sessions."""

    def __init__(self, handler: GatewayHandler, db: sessionmaker[Session]) -> None:
        super().__init__()
        self.handler, self.db = handler, db
        self.model = Facts()
        with transaction(db) as s:  # each example starts from an open list and no facts
            s.execute(delete(Ban))
            s.execute(delete(Subscription))
            s.execute(update(MailingList).values(policy=ListPolicy.OPEN, moderators=""))

    def _change(self, change: Change) -> None:
        what, who = change
        m = self.model
        with transaction(self.db) as s:
            mlist = lists.require(s, "dev")
            if what == "ban" and who not in m.banned:
                s.add(Ban(list_id=mlist.id, address=who))
                m.banned.add(who)
            elif what == "unban":
                s.execute(delete(Ban).where(Ban.address == who))
                m.banned.discard(who)
            elif what == "join" and who not in m.members:
                s.execute(delete(Subscription).where(Subscription.address == who))
                lists.subscribe(s, mlist, who)
                m.members.add(who)
            elif what == "leave":
                s.execute(
                    update(Subscription)
                    .where(Subscription.address == who)
                    .values(status=SubscriptionState.ENDED)
                )
                m.members.discard(who)
            elif what in ("mod", "unmod"):
                (m.moderators.add if what == "mod" else m.moderators.discard)(who)
                mlist.moderators = ", ".join(sorted(m.moderators))
            elif what == "policy":
                mlist.policy = m.policy = ListPolicy(who)

    def _arrivals(self, senders: list[str]) -> list[Job]:
        return [
            Arrival(
                f"From: {who}\r\nMessage-ID: <f{next(_SERIAL)}@x>\r\n\r\nhi\r\n".encode(),
                who,
                ("dev@lists.test",),
            )
            for who in senders
        ]

    @rule(change=CHANGES)
    def change(self, change: Change) -> None:
        self._change(change)

    @rule(senders=st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3))
    def post(self, senders: list[str]) -> None:
        replies = _replies(self.handler.answer(self._arrivals(senders)))
        assert replies == [self.model.reply(who) for who in senders]

    @rule(
        senders=st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3),
        change=CHANGES,
    )
    def change_while_a_batch_is_decided(self, senders: list[str], change: Change) -> None:
        before = self.model.copy()
        _, begun = self.handler.answer.begin(self._arrivals(senders))
        self._change(change)
        replies = _replies(self.handler.answer.finish(begun))
        assert replies in (
            [before.reply(who) for who in senders],
            [self.model.reply(who) for who in senders],
        )


def _replies(results: list[Result]) -> list[str]:
    return [r.reply(False) if isinstance(r, Answer) else repr(r) for r in results]


def test_the_answers_follow_the_facts(
    dev_gate: tuple[GatewayHandler, sessionmaker[Session]],
) -> None:
    assert dev_gate[0].answer.cache is not None  # PostgreSQL: the writer keeps the facts
    run_state_machine_as_test(
        lambda: Gateway(*dev_gate),  # type: ignore[arg-type]
        settings=settings_for(25, 30),
    )
