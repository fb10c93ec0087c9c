"""A model of digest membership over weeks: each post in exactly one digest per digest reader.

Three digest readers of one list: Dai stays on the daily digest, Wes on the weekly one, and Ann
changes between daily and weekly whenever hypothesis likes. Posts come on the days of two
simulated weeks (all in the past, so every run sees complete days); every night the periodic
run sends what is due, as the beat does (worker.digest.send_digests on its default day, the
night's day), but for nights the beat is down (fewer in a row than the run's catch-up
covers). After every step: no reader has had a post twice, each digest holds only posts of its
own day or week, and the mail count agrees with the digests_sent rows marked sent. At the end
(the runs of the following week done) every reader has had every post exactly once.

Readers' reports hide a post, and a moderator puts it back, at any hour: a post put back comes
to each reader once all the same, in the digest of its day or week, or of the day or week it was
put back (worker/digest_owed.py: a digest made while the post was hidden went without it). At
the end every hidden post is put back.

The clock the run reads (worker.digest.default_day) is the simulated night; the posts' times are
set as received, the reports' and the put-backs' as the simulated hour, and the digests a run
makes as made at ten past midnight after its night, as the beat makes them. Changes of frequency
take effect at once (the row keeps no time of them).

How long it searches: tests/support/searches.py.
"""

from __future__ import annotations

import mailbox
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select, update

from listgate import lists, reports
from listgate.db import transaction
from listgate.digests import last_complete_week
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import DigestSent, Message
from listgate.models.web import Report
from listgate.states import DigestFrequency, DigestState, ReportState
from tests.support.config import ENGINES, dispose_engines, env_for, prepare
from tests.support.factories import change_digest
from tests.support.searches import TIMEOUT, settings_for
from tests.support.tracer import Search
from worker import digest
from worker.context import WorkerContext
from worker.mailer import maildir_path

pytestmark = [pytest.mark.timeout(TIMEOUT), pytest.mark.long(52)]  # 64 s in CI, 5 examples untraced

ANN, DAI, WES = "ann@example.org", "dai@example.org", "wes@example.org"
WEEKS = 2  # simulated weeks of posts
_ID = re.compile(rb"^Message-ID: <(p[0-9]+@x)>", re.MULTILINE)
_LABEL = re.compile(r"digest, (week of )?([0-9-]{10}) ")


class DigestWeeks(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        SEARCH.example()
        self.dir = Path(tempfile.mkdtemp(prefix="digest-weeks-"))
        self.engines = len(ENGINES)
        self.settings, self.db = prepare(env_for(self.dir), "dev")
        self.ctx = WorkerContext(self.settings)
        self.mp = pytest.MonkeyPatch()
        # Monday of the first simulated week: the last of them and the runs after it are past
        self.monday = last_complete_week(datetime.now(UTC).date()).start - timedelta(
            weeks=WEEKS + 1
        )
        self.day = 0  # today, counted from self.monday
        self.posts: dict[str, int] = {}  # Message-ID -> its day
        self.times: dict[str, datetime] = {}  # Message-ID -> when it came, was hidden, put back
        self.hidden: set[str] = set()
        self.reporters = 0
        self.back: dict[str, set[int]] = {}  # Message-ID -> the days it was put back
        self.started = datetime.now(UTC)  # the digests made since are the run's just made
        self.made = datetime.min.replace(tzinfo=UTC)  # when the last run made its digests
        self.seen: set[str] = set()  # Maildir keys read
        self.had: dict[str, Counter[str]] = {a: Counter() for a in (ANN, DAI, WES)}
        self.mails = 0
        self.down = 0  # nights in a row without a run
        self.ann = DigestFrequency.DAILY
        with transaction(self.db) as session:
            mlist = lists.require(session, "dev")
            for address, frequency in ((ANN, "daily"), (DAI, "daily"), (WES, "weekly")):
                sub = lists.subscribe(session, mlist, address, "digest")
                sub.digest_frequency = DigestFrequency(frequency)
                sub.confirmed_at = datetime.combine(self.monday, time(0), tzinfo=UTC) - timedelta(
                    days=30
                )

    def _date(self, day: int) -> date:
        return self.monday + timedelta(days=day)

    @precondition(lambda self: self.day < 7 * WEEKS)
    @rule(hour=st.integers(0, 23))
    def a_post_comes(self, hour: int) -> None:
        message_id = f"p{len(self.posts) + 1}@x"
        raw = (
            f"From: bob@example.org\r\nSubject: Post {message_id}\r\n"
            f"Message-ID: <{message_id}>\r\n\r\nThe text of {message_id}.\r\n"
        ).encode()
        when = datetime.combine(self._date(self.day), time(hour), tzinfo=UTC)
        with transaction(self.db) as session:
            ingest(session, parse(raw), lists.require(session, "dev"), domain="lists.test")
            session.execute(
                update(Message).where(Message.message_id == message_id).values(received_at=when)
            )
        self.posts[message_id] = self.day
        self.times[message_id] = when

    def _now(self, message_id: str, hour: int) -> datetime:
        """The simulated hour of today, after what last happened to the post and after the
        last run (made at ten past midnight: what happens after it in the steps is later)."""
        at = datetime.combine(self._date(self.day), time(hour), tzinfo=UTC)
        return max(at, self.times[message_id], self.made) + timedelta(minutes=1)

    @precondition(lambda self: self.day < 7 * WEEKS and set(self.posts) - self.hidden)
    @rule(data=st.data(), hour=st.integers(0, 23))
    def readers_hide(self, data: st.DataObject, hour: int) -> None:
        """Three readers report a visible post: it is hidden (as the web archive does)."""
        message_id = data.draw(st.sampled_from(sorted(set(self.posts) - self.hidden)))
        at = self._now(message_id, hour)
        with transaction(self.db) as session:
            msg = session.scalars(select(Message).where(Message.message_id == message_id)).one()
            for _ in range(3):  # other readers each time (one report a reader and post)
                self.reporters += 1
                session.add(
                    Report(
                        message_pk=msg.id,
                        list_id=msg.list_id,
                        address=f"r{self.reporters}@example.org",
                        created_at=at,
                    )
                )
            reports.hide(session, msg, now=at)
        self.hidden.add(message_id)
        self.times[message_id] = at

    @precondition(lambda self: self.hidden)
    @rule(data=st.data(), hour=st.integers(0, 23))
    def moderator_puts_back(self, data: st.DataObject, hour: int) -> None:
        """A moderator keeps a hidden post (webarchive/views/moderation.py approve)."""
        self._put_back(data.draw(st.sampled_from(sorted(self.hidden))), hour)

    def _put_back(self, message_id: str, hour: int) -> None:
        at = self._now(message_id, hour)
        with transaction(self.db) as session:
            msg = session.scalars(select(Message).where(Message.message_id == message_id)).one()
            reports.restore(session, msg, now=at)
            reports.close_reports(session, msg.id, ReportState.DISMISSED, "mod@example.org")
        self.hidden.discard(message_id)
        self.back.setdefault(message_id, set()).add((at.date() - self.monday).days)
        self.times[message_id] = at

    @rule(frequency=st.sampled_from((DigestFrequency.DAILY, DigestFrequency.WEEKLY)))
    def ann_changes(self, frequency: DigestFrequency) -> None:
        change_digest(self.db, ANN, frequency)
        self.ann = frequency

    # every hidden post is put back before the last week's nights: its digests are still to come
    @precondition(
        lambda self: self.day < 7 * (WEEKS + 1) and (self.day < 7 * WEEKS or not self.hidden)
    )
    @rule()
    def night(self) -> None:
        """The day ends: the beat's run, then the next day."""
        self.mp.setattr(digest, "default_day", lambda: self._date(self.day))
        digest.send_digests(self.ctx)
        made = datetime.combine(self._date(self.day + 1), time(0, 10), tzinfo=UTC)
        with transaction(self.db) as session:
            session.execute(
                update(DigestSent)
                .where(DigestSent.created_at >= self.started)
                .values(created_at=made, sent_at=made)
            )
        self.made = made
        self.day += 1
        self.down = 0
        self._read_mail()

    @precondition(lambda self: self.day < 7 * WEEKS and self.down < digest.CATCH_UP - 1)
    @rule()
    def night_without_run(self) -> None:
        """The day ends while the beat is down: no run. Never more nights in a row than the next
        run's catch-up covers (digest.CATCH_UP days)."""
        self.day += 1
        self.down += 1

    def _read_mail(self) -> None:
        box = mailbox.Maildir(maildir_path(self.settings.outbound))
        for key in sorted(set(box.keys()) - self.seen):
            self.seen.add(key)
            mail = box[key]
            to = str(mail["Delivered-To"])
            label = _LABEL.search(str(mail["Subject"]))
            assert label is not None, mail["Subject"]
            start = date.fromisoformat(label.group(2))
            days = 7 if label.group(1) else 1
            ids = [m.decode() for m in _ID.findall(mail.as_bytes())]
            assert ids, f"an empty digest to {to}: {mail['Subject']}"
            for message_id in ids:
                days_of = {self.posts[message_id], *self.back.get(message_id, ())}
                assert any(
                    start <= self._date(on) < start + timedelta(days=days) for on in days_of
                ), f"{message_id} of days {sorted(days_of)} in the digest of {mail['Subject']}"
            self.had[to].update(ids)
            self.mails += 1

    @invariant()
    def no_post_twice(self) -> None:
        for address, had in self.had.items():
            twice = sorted(m for m, n in had.items() if n > 1)
            assert not twice, f"{address} had {twice} more than once"
        with self.db() as session:
            sent = session.scalar(
                select(func.count())
                .select_from(DigestSent)
                .where(DigestSent.status == DigestState.SENT)
            )
        assert sent == self.mails

    def teardown(self) -> None:
        try:
            for message_id in sorted(self.hidden):
                self._put_back(message_id, 23)
            while self.day < 7 * (WEEKS + 1):
                self.night()
            self.no_post_twice()
            for address, had in self.had.items():
                missing = sorted(set(self.posts) - set(had))
                assert not missing, f"{address} never had {missing} (days {self.posts})"
        finally:
            self.mp.undo()
            self.ctx.dispose()
            dispose_engines(self.engines)
            shutil.rmtree(self.dir, ignore_errors=True)


DigestWeeks.TestCase.settings = settings_for(8, steps=40)
test_digest_weeks = DigestWeeks.TestCase
SEARCH = Search(traced=3)  # of the 8 examples under coverage's tracer (tests.support.tracer)


@pytest.fixture(autouse=True)
def _search_closed() -> Iterator[None]:
    yield
    SEARCH.close()
