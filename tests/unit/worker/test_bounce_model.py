"""A model of the bounce score over time, checked against the real service (SQLite).

Hypothesis drives random sequences of posts, reports about any copy sent so far (a dead
mailbox, a full one, a refused message; the same copy again and again), days passing, the
person leaving, and coming back (on the web, by mail to NAME+subscribe@ and the confirmation,
or subscribed again by an owner as the command line does). The model predicts, after every
step, whether Pat is active, suspended or gone, her bounce score, how many times she was told
she is suspended, and whether a post reaches her.

Its rules: a report counts only against a copy sent since the subscription last started; one
copy counts once (the most its reports weigh: a full mailbox 0.5, a dead one 1, a refused
message nothing); a score whose last counted report is 30 days old or more starts again from
zero; at the limit an active subscription is suspended and told so, once; coming back starts
from zero. Days pass by moving every stored time of the list back (the VERP token of a copy
names when its row was made, as sent: that stays).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
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
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import confirmations, dispatch, lists, subscriptions
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import STORED, ingest
from listgate.mail.parser import parse
from listgate.models import Bounce, Delivery, Message, OutboxEntry, Subscription
from listgate.schema import upgrade
from listgate.states import DeliveryState, SubscriptionState
from listgate.tokens import VERP_DELIVERY, verp_token
from tests.support.config import make_settings
from tests.support.searches import TIMEOUT, settings_for
from tests.unit.worker.test_bounces import dsn
from worker import bounces
from worker.notify import recipients

pytestmark = pytest.mark.timeout(TIMEOUT)

PAT, SAM = "pat@example.org", "sam@example.org"
LIMIT = 2
FORGET_DAYS = 30
EXAMPLES = 60
# what a report says: (status, diagnostic, what it weighs against Pat)
REPORTS = {
    "dead": ("5.1.1", "550 5.1.1 <pat@example.org>: User unknown", 1.0),
    "full": ("4.2.2", "452 4.2.2 <pat@example.org>: Mailbox full", 0.5),
    "refused": ("5.7.1", "550 5.7.1 Message rejected as spam by the content filter", 0.0),
}
ACTIVE, SUSPENDED, ENDED = (
    SubscriptionState.ACTIVE,
    SubscriptionState.SUSPENDED,
    SubscriptionState.ENDED,
)


class Site:
    """The database, a new list for each example (Pat and Sam subscribed by an owner)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        upgrade(self.engine)
        self.db: sessionmaker[Session] = session_factory(writer(self.engine))
        self.names = count(1)
        self.name = ""
        self.posts = count(1)

    def new_list(self) -> None:
        self.name = f"l{next(self.names)}"
        with transaction(self.db) as session:
            mlist = lists.create(session, self.name)
            for who in (PAT, SAM):
                lists.subscribe(session, mlist, who)

    def post(self) -> dict[str, str]:
        """A post from outside, fanned out as the worker does and sent: {address: VERP token}."""
        n = next(self.posts)
        raw = (
            f"From: eve@example.com\r\nTo: {self.name}@lists.test\r\nSubject: Topic {n}\r\n"
            f"Message-ID: <b{n}@x>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nPost {n}\r\n"
        ).encode()
        with transaction(self.db) as session:
            mlist = lists.require(session, self.name)
            result = ingest(session, parse(raw), mlist, domain="lists.test")
            assert result.status == STORED and result.message_pk is not None, result
            msg = session.get_one(Message, result.message_pk)
            now = datetime.now(UTC)
            for address, (sub_id, _) in recipients(session, msg, set()).items():
                row = Delivery(
                    message_pk=msg.id,
                    address=address,
                    subscription_id=sub_id,
                    status=DeliveryState.SENT,
                    sent_at=now,
                    created_at=now,
                )
                session.add(row)
            session.flush()
            rows = session.scalars(select(Delivery).where(Delivery.message_pk == msg.id))
            return {
                r.address: verp_token(self.settings.secret_key, VERP_DELIVERY, r.id, r.created_at)
                for r in rows
            }

    def report(self, token: str, what: str) -> None:
        """A DSN about Pat's copy to its VERP address, handled as the worker does."""
        status, diagnostic, _ = REPORTS[what]
        with transaction(self.db) as session:
            entry = OutboxEntry(payload=json.dumps({"arg": token}))
            bounces.handle(session, self.settings, entry, dsn(PAT, status, diagnostic))

    def days_pass(self, days: int) -> None:
        """Every stored time of the list moves back by days (a copy's created_at, in its token,
        stays: the token of a copy sent then still names it)."""
        back = timedelta(days=days)
        with transaction(self.db) as session:
            mlist = lists.require(session, self.name)
            subs = list(
                session.scalars(select(Subscription).where(Subscription.list_id == mlist.id))
            )
            for sub in subs:
                for column in ("created_at", "confirmed_at", "last_bounce_at", "ended_at"):
                    if getattr(sub, column) is not None:
                        setattr(sub, column, getattr(sub, column) - back)
            pks = select(Message.id).where(Message.list_id == mlist.id)
            for row in session.scalars(select(Delivery).where(Delivery.message_pk.in_(pks))):
                row.sent_at = row.sent_at - back if row.sent_at else None
            ids = [s.id for s in subs]
            for bounce in session.scalars(select(Bounce).where(Bounce.subscription_id.in_(ids))):
                bounce.received_at -= back

    def comes_back(self, channel: str) -> None:
        with transaction(self.db) as session:
            mlist = lists.require(session, self.name)
            if channel == "web":
                subscriptions.change(
                    session, mlist, PAT, subscriptions.EVERY_POST, channel=subscriptions.WEB
                )
            elif channel == "mail":  # NAME+subscribe@, as the suspension notice says
                outcome = confirmations.request(
                    session,
                    mlist,
                    PAT,
                    secret=self.settings.secret_key,
                    base_url="http://archive.test",
                    domain="lists.test",
                    channel=subscriptions.MAIL,
                )
                sub = outcome.subscription
                if sub is not None and sub.status == SubscriptionState.PENDING:
                    code = confirmations.confirm_code(self.settings.secret_key, sub)
                    confirmations.confirm_by_code(session, self.settings.secret_key, mlist, code)
            else:  # `listgate subscribe pat@... --list NAME`
                lists.subscribe(session, mlist, PAT)

    def leaves(self) -> None:
        with transaction(self.db) as session:
            subscriptions.change(
                session, lists.require(session, self.name), PAT, subscriptions.LEAVE, channel="web"
            )

    def pat(self) -> tuple[str, float, int]:
        """Pat's status, score, and how many suspension notices she was sent on this list."""
        with self.db() as session:
            mlist = lists.require(session, self.name)
            sub = session.scalars(
                select(Subscription).where(
                    Subscription.list_id == mlist.id, Subscription.address == PAT
                )
            ).one()
            notices = [
                json.loads(e.payload)
                for e in session.scalars(
                    select(OutboxEntry).where(OutboxEntry.kind == dispatch.SEND_NOTICE)
                )
            ]
            told = sum(
                1
                for n in notices
                if n.get("template") == "suspended" and n.get("list") == self.name
            )
            return sub.status, sub.bounce_score, told


class BounceLife(RuleBasedStateMachine):
    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        site.new_list()
        self.status: SubscriptionState = ACTIVE
        self.score = 0.0
        self.told = 0
        self.day = 0  # days passed in this example
        self.last_bounce: int | None = None  # the day of the last counted report
        self.clock = 1  # orders starts and sends
        self.started = 0  # when Pat's subscription last started
        # Pat's copies: [token, when sent, the most its reports weighed]
        self.copies: list[list] = []

    @rule()
    def post(self) -> None:
        got = self.site.post()
        assert SAM in got
        assert (PAT in got) == (self.status == ACTIVE), (got, self.status)
        if PAT in got:
            self.copies.append([got[PAT], self.clock, 0.0])
            self.clock += 1

    @precondition(lambda self: self.copies)
    @rule(which=st.integers(0, 99), what=st.sampled_from(sorted(REPORTS)), again=st.integers(1, 3))
    def reported(self, which: int, what: str, again: int) -> None:
        """A report about one of Pat's copies, delivered `again` times."""
        copy = self.copies[which % len(self.copies)]
        token, sent, weighed = copy
        for _ in range(again):
            self.site.report(token, what)
        weight = REPORTS[what][2]
        if sent < self.started:
            return  # about a copy sent before she came back
        copy[2] = max(weighed, weight)
        if weight <= weighed:
            return
        if self.last_bounce is not None and self.day - self.last_bounce >= FORGET_DAYS:
            self.score = 0.0
        self.score += weight - weighed
        self.last_bounce = self.day
        if self.status == ACTIVE and self.score >= LIMIT:
            self.status = SUSPENDED
            self.told += 1

    @rule(days=st.sampled_from([1, 7, 29, 30, 31]))
    def days_pass(self, days: int) -> None:
        self.site.days_pass(days)
        self.day += days

    @rule(channel=st.sampled_from(["web", "mail", "cli"]))
    def comes_back(self, channel: str) -> None:
        self.site.comes_back(channel)
        if self.status != ACTIVE:
            self.status, self.score, self.started = ACTIVE, 0.0, self.clock
            self.clock += 1

    @precondition(lambda self: self.status != ENDED)
    @rule()
    def leaves(self) -> None:
        self.site.leaves()
        self.status = ENDED

    @invariant()
    def pat_is_as_predicted(self) -> None:
        status, score, told = self.site.pat()
        assert (status, round(score, 6), told) == (self.status, self.score, self.told)


@pytest.mark.long(50)
def test_bounce_score_over_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the limit on confirmation mail to one address has its own tests; here Pat asks often
    monkeypatch.setattr(confirmations, "CONFIRM_LIMIT", (10**6, 900))
    settings = make_settings(tmp_path, LISTGATE_BOUNCE_SCORE_LIMIT=str(LIMIT))
    site = Site(settings)
    try:

        class OnSite(BounceLife):  # hypothesis builds the machine from a class with no arguments
            def __init__(self) -> None:
                super().__init__(site)

        run_state_machine_as_test(OnSite, settings=settings_for(EXAMPLES, steps=30))
    finally:
        site.engine.dispose()
