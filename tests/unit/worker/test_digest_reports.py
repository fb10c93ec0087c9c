"""A post hidden by readers' reports over the night its digest is made, then put back by a
moderator: the digest readers get it in the next digest, once; a post hidden only after its
digest had it does not come again. Daily and weekly readers each by their own digest's night."""

from __future__ import annotations

import mailbox
import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, reports
from listgate.db import transaction
from listgate.digests import last_complete_week
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import DigestSent, Message
from listgate.models.web import Report
from listgate.states import DigestFrequency, ReportState
from tests.support.config import make_settings
from tests.support.factories import MakeList, change_digest
from worker import digest
from worker.context import WorkerContext
from worker.digest import send_digests
from worker.mailer import maildir_path

DEE = "dee@example.org"
WES = "wes@example.org"
READERS = ("r1@example.org", "r2@example.org", "r3@example.org")  # the report threshold: 3


def _yesterday(hour: int) -> datetime:
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(hour), tzinfo=UTC)


def _day(tmp_path: Path, db: sessionmaker[Session], make_list: MakeList) -> WorkerContext:
    """Dee reads dev's daily digest; two posts came yesterday morning."""
    make_list("dev")
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        lists.subscribe(session, mlist, DEE, "digest").confirmed_at = _yesterday(0) - timedelta(
            days=5
        )
        for name in ("calm", "disputed"):
            raw = (
                f"From: bob@example.org\r\nSubject: {name}\r\nMessage-ID: <{name}@x>\r\n\r\n"
                f"A {name} post.\r\n"
            ).encode()
            ingest(session, parse(raw), mlist, domain="lists.test")
        session.execute(update(Message).values(received_at=_yesterday(9)))
    return WorkerContext(make_settings(tmp_path))  # `db`'s data dir: the embedded Maildir


def _reported(db: sessionmaker[Session], at: datetime) -> None:
    """Three readers report the disputed post at `at`: it is hidden (as the web archive does)."""
    with transaction(db) as session:
        msg = session.scalars(select(Message).where(Message.message_id == "disputed@x")).one()
        for address in READERS:
            session.add(
                Report(message_pk=msg.id, list_id=msg.list_id, address=address, created_at=at)
            )
        reports.hide(session, msg, now=at)


def _put_back(db: sessionmaker[Session]) -> None:
    """A moderator keeps the post (webarchive/views/moderation.py approve)."""
    with transaction(db) as session:
        msg = session.scalars(select(Message).where(Message.message_id == "disputed@x")).one()
        reports.restore(session, msg)
        reports.close_reports(session, msg.id, ReportState.DISMISSED, "mod@example.org")


def _made_at(db: sessionmaker[Session], at: datetime) -> None:
    """The digests made so far were made at `at` (a test's run stands for a night's)."""
    with transaction(db) as session:
        session.execute(update(DigestSent).values(created_at=at, sent_at=at))


def _digests(ctx: WorkerContext) -> list[list[str]]:
    """The posts of each digest mailed so far (by their Message-IDs), in order."""
    box = mailbox.Maildir(maildir_path(ctx.settings.outbound))
    return sorted(
        [
            m.decode()
            for m in re.findall(rb"^Message-ID: <([a-z]+@x)>", mail.as_bytes(), re.MULTILINE)
        ]
        for mail in box
    )


def test_a_post_hidden_over_the_night_of_its_digest_comes_in_the_next_one_when_put_back(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    ctx = _day(tmp_path, db, make_list)
    _reported(db, _yesterday(20))
    assert send_digests(ctx) == 1  # yesterday's digest, made while the post was hidden
    assert _digests(ctx) == [["calm@x"]]

    _put_back(db)
    assert send_digests(ctx) == 0
    assert send_digests(ctx, datetime.now(UTC).date()) == 1, (
        "the post put back must come in the next digest: yesterday's went without it"
    )
    assert _digests(ctx) == [["calm@x"], ["disputed@x"]]


def test_a_post_hidden_after_its_digest_had_it_does_not_come_again(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    ctx = _day(tmp_path, db, make_list)
    assert send_digests(ctx) == 1
    _reported(db, datetime.now(UTC))
    _put_back(db)
    assert send_digests(ctx) == 0 and send_digests(ctx, datetime.now(UTC).date()) == 0
    assert _digests(ctx) == [["calm@x", "disputed@x"]]


def test_a_post_hidden_after_its_day_but_before_the_late_run_comes_when_put_back(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    """The day's digest is made late (the beat was down over the night): the post, hidden in
    the morning after its day, missed that digest all the same, and comes once put back."""
    ctx = _day(tmp_path, db, make_list)
    _reported(db, _yesterday(0) + timedelta(days=1, microseconds=1))  # today, before the run
    assert send_digests(ctx) == 1  # yesterday's, made late: without the hidden post
    assert _digests(ctx) == [["calm@x"]]

    _put_back(db)
    assert send_digests(ctx, datetime.now(UTC).date()) == 1, (
        "the post put back must come in the next digest: its day's was made while it was hidden"
    )
    assert _digests(ctx) == [["calm@x"], ["disputed@x"]]


@pytest.mark.parametrize("dee_changes, wes_changes", [(False, False), (True, False), (False, True)])
def test_a_post_hidden_over_the_weeks_digest_comes_to_weekly_readers_when_put_back(
    tmp_path: Path,
    db: sessionmaker[Session],
    make_list: MakeList,
    monkeypatch: pytest.MonkeyPatch,
    dee_changes: bool,
    wes_changes: bool,
) -> None:
    """Dee reads the daily digest, Wes the weekly one. A post of last Monday is in Dee's digest
    of Monday; readers' reports hide it on Tuesday; the week's digest goes to Wes without it; a
    moderator puts it back today. Wes gets it in a later digest, once, even when he changed to
    the daily digest before it was put back (wes_changes); Dee does not again, even when she
    changed to the weekly digest meanwhile (dee_changes)."""
    week = last_complete_week(datetime.now(UTC).date())
    monday = datetime.combine(week.start, time(0), tzinfo=UTC)
    make_list("dev")
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        for address, frequency in ((DEE, DigestFrequency.DAILY), (WES, DigestFrequency.WEEKLY)):
            sub = lists.subscribe(session, mlist, address, "digest")
            sub.digest_frequency, sub.confirmed_at = frequency, monday - timedelta(days=30)
        raw = b"From: bob@example.org\r\nSubject: d\r\nMessage-ID: <disputed@x>\r\n\r\nA post.\r\n"
        ingest(session, parse(raw), mlist, domain="lists.test")
        session.execute(update(Message).values(received_at=monday + timedelta(hours=9)))
    ctx = WorkerContext(make_settings(tmp_path))
    assert send_digests(ctx, week.start) == 1  # Monday's, to Dee
    _made_at(db, monday + timedelta(days=1, minutes=10))  # on Monday's night, as the beat does
    _reported(db, monday + timedelta(days=1, hours=9))
    if dee_changes:
        change_digest(db, DEE, "weekly")
    monkeypatch.setattr(digest, "default_day", lambda: week.start + timedelta(days=6))
    assert send_digests(ctx) == 0  # the week's: nothing for Wes (nor Dee)
    if wes_changes:
        change_digest(db, WES, "daily")
    _put_back(db)
    this_sunday = week.start + timedelta(days=13)  # the runs to the end of this week
    monkeypatch.setattr(digest, "default_day", lambda: this_sunday)
    send_digests(ctx)
    box = mailbox.Maildir(maildir_path(ctx.settings.outbound))
    had = Counter(str(mail["Delivered-To"]) for mail in box if b"<disputed@x>" in mail.as_bytes())
    assert had == {DEE: 1, WES: 1}, "the post put back must reach each reader once"
