"""The bounce model joined with the digest: Pat switches between every post and the digest.

Hypothesis drives random sequences of posts (a copy to Pat while she is on every post), digests
(a copy while she is on the digest), reports about any copy sent so far (a dead mailbox, a full
one, a refused message; the same copy again and again), days passing, switches on the web, the
person leaving and coming back (tests/unit/worker/test_bounce_model.py's channels). The model
predicts, after every step, each of her two rows' status and bounce score, and how many times
she was told each was suspended.

Its rules are the bounce model's, per row: a report counts against the row its copy went to (a
post's: every post; a digest's: the digest, or every post when the digest ended by a switch to
every post and she has not left every post since) only when the copy was sent since that row
last started; one copy counts once (the most its reports weigh, a digest's as a post's); a score
whose last counted report is 30 days old starts again from zero; at the limit an active row is
suspended and told so, once; starting a row again (a switch, a return) starts from zero and ends
the other row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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

from listgate import confirmations, dispatch, lists, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import DigestSent, OutboxEntry, Subscription
from listgate.states import DigestState, SubscriptionKind, SubscriptionState
from listgate.tokens import VERP_DIGEST, verp_token
from tests.support.config import make_settings
from tests.support.searches import TIMEOUT, settings_for
from tests.unit.worker.test_bounce_model import FORGET_DAYS, LIMIT, PAT, REPORTS, Site

pytestmark = pytest.mark.timeout(TIMEOUT)

EXAMPLES = 40
ACTIVE, SUSPENDED, ENDED = (
    SubscriptionState.ACTIVE,
    SubscriptionState.SUSPENDED,
    SubscriptionState.ENDED,
)
LIST, DIGEST = SubscriptionKind.LIST, SubscriptionKind.DIGEST


class DigestSite(Site):
    """The bounce model's site, with digests and switches."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.days = count(1)

    def digest(self) -> str:
        """Pat's digest of a new day, sent now: its VERP token."""
        with transaction(self.db) as session:
            now = datetime.now(UTC)
            row = DigestSent(
                list_id=lists.require(session, self.name).id,
                address=PAT,
                day=date(2026, 1, 1) + timedelta(days=next(self.days)),
                status=DigestState.SENT,
                message_count=1,
                sent_at=now,
                created_at=now,
            )
            session.add(row)
            session.flush()
            return verp_token(self.settings.secret_key, VERP_DIGEST, row.id, row.created_at)

    def switch(self, kind: str) -> None:
        """Pat switches on the web: to the daily digest, or to every post."""
        action = subscriptions.DIGEST if kind == DIGEST else subscriptions.EVERY_POST
        with transaction(self.db) as session:
            subscriptions.change(
                session, lists.require(session, self.name), PAT, action, channel="web"
            )

    def days_pass(self, days: int) -> None:
        """As the bounce model's, and a digest went out days earlier too (its created_at, in its
        token, stays)."""
        super().days_pass(days)
        with transaction(self.db) as session:
            mlist = lists.require(session, self.name)
            for row in session.scalars(select(DigestSent).where(DigestSent.list_id == mlist.id)):
                row.sent_at = row.sent_at - timedelta(days=days) if row.sent_at else None
            for sub in session.scalars(
                select(Subscription).where(Subscription.list_id == mlist.id)
            ):
                if sub.suspended_at is not None:
                    sub.suspended_at -= timedelta(days=days)

    def row(self, kind: str) -> tuple[str | None, float, int]:
        """Pat's row of kind: its status (None: never made), score, and suspension notices."""
        with self.db() as session:
            mlist = lists.require(session, self.name)
            sub = session.scalars(
                select(Subscription).where(
                    Subscription.list_id == mlist.id,
                    Subscription.address == PAT,
                    Subscription.kind == kind,
                )
            ).one_or_none()
            told = sum(
                1
                for e in session.scalars(
                    select(OutboxEntry).where(OutboxEntry.kind == dispatch.SEND_NOTICE)
                )
                if (n := json.loads(e.payload)).get("template") == "suspended"
                and n.get("list") == self.name
                and n.get("kind") == kind
            )
            if sub is None:
                return None, 0.0, told
            return sub.status, round(sub.bounce_score, 6), told


@dataclass
class Row:
    """What the model knows of one of Pat's rows."""

    status: str | None = None
    score: float = 0.0
    told: int = 0
    last_bounce: int | None = None  # the day of the last counted report
    started: int = 0  # when it last started (the clock)
    switched: bool = False  # ended by a switch to the other (a digest row: to every post)


class DigestBounceLife(RuleBasedStateMachine):
    def __init__(self, site: DigestSite) -> None:
        super().__init__()
        self.site = site
        site.new_list()
        self.rows: dict[str, Row] = {LIST: Row(ACTIVE), DIGEST: Row()}
        self.day = 0
        self.clock = 1
        self.copies: list[list] = []  # [token, kind, when sent, the most its reports weighed]

    def _start(self, kind: str) -> None:
        row, other = self.rows[kind], self.rows[DIGEST if kind == LIST else LIST]
        if row.status != ACTIVE:
            row.status, row.score, row.started = ACTIVE, 0.0, self.clock
            self.clock += 1
        if other.status not in (None, ENDED):
            other.status, other.switched = ENDED, True

    @rule()
    def post(self) -> None:
        got = self.site.post()
        assert (PAT in got) == (self.rows[LIST].status == ACTIVE), (got, self.rows)
        if PAT in got:
            self.copies.append([got[PAT], LIST, self.clock, 0.0])
            self.clock += 1

    @precondition(lambda self: self.rows[DIGEST].status == ACTIVE)
    @rule()
    def digest(self) -> None:
        self.copies.append([self.site.digest(), DIGEST, self.clock, 0.0])
        self.clock += 1

    @precondition(lambda self: self.copies)
    @rule(
        which=st.integers(0, 99),
        whats=st.lists(st.sampled_from(sorted(REPORTS)), min_size=1, max_size=3),
    )
    def reported(self, which: int, whats: list[str]) -> None:
        """Reports about one of Pat's copies (a post's or a digest's), one after the other (the
        same again, or a relay's 4xx then the 5xx when it gives up)."""
        copy = self.copies[-1 - which % len(self.copies)]  # the newest most often
        for what in whats:
            self.site.report(copy[0], what)
            self._counted(copy, REPORTS[what][2])

    def _counted(self, copy: list, weight: float) -> None:
        _, kind, sent, weighed = copy
        row = self.rows[kind]
        listed = self.rows[LIST].status not in (None, ENDED)
        if kind == DIGEST and row.status == ENDED and row.switched and listed:
            row = self.rows[LIST]  # her mailbox is mailed every post now: it counts there
        if sent < row.started:
            return  # about a copy sent before the row started again
        copy[3] = max(weighed, weight)
        if weight <= weighed:
            return
        if row.last_bounce is not None and self.day - row.last_bounce >= FORGET_DAYS:
            row.score = 0.0
        row.score += weight - weighed
        row.last_bounce = self.day
        if row.status == ACTIVE and row.score >= LIMIT:
            row.status = SUSPENDED
            row.told += 1

    @rule(days=st.sampled_from([1, 7, 29, 30, 31]))
    def days_pass(self, days: int) -> None:
        self.site.days_pass(days)
        self.day += days

    @rule(kind=st.sampled_from([LIST, DIGEST]))
    def switches(self, kind: str) -> None:
        """On the web (signed in): a suspended row or an ended one starts again too."""
        self.site.switch(kind)
        self._start(kind)

    @rule(channel=st.sampled_from(["web", "mail", "cli"]))
    def comes_back(self, channel: str) -> None:
        """To every post (the bounce model's channels)."""
        self.site.comes_back(channel)
        self._start(LIST)

    @precondition(lambda self: any(r.status not in (None, ENDED) for r in self.rows.values()))
    @rule()
    def leaves(self) -> None:
        self.site.leaves()
        for row in self.rows.values():
            if row.status not in (None, ENDED):
                row.status, row.switched = ENDED, False

    @invariant()
    def pat_is_as_predicted(self) -> None:
        for kind, row in self.rows.items():
            assert self.site.row(kind) == (row.status, row.score, row.told), kind


@pytest.mark.long(38)
def test_bounce_scores_of_every_post_and_the_digest_over_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confirmations, "CONFIRM_LIMIT", (10**6, 900))
    settings = make_settings(tmp_path, LISTGATE_BOUNCE_SCORE_LIMIT=str(LIMIT))
    site = DigestSite(settings)
    try:

        class OnSite(DigestBounceLife):
            def __init__(self) -> None:
                super().__init__(site)

        run_state_machine_as_test(OnSite, settings=settings_for(EXAMPLES, steps=30))
    finally:
        site.engine.dispose()
