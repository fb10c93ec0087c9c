"""A digest reader changing how often the digest comes: each post in exactly one digest.

Ann reads the list as a digest; she changes from daily to weekly (or back) in the middle of a
week. The posts of the days whose daily digest she already had must not come again in the
week's digest, and the posts of a week whose weekly digest she already had must not come again
in a daily one.
"""

from __future__ import annotations

import mailbox
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists
from listgate.db import transaction
from listgate.digests import Period, last_complete_week
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import DigestSent, Message, OutboxEntry
from listgate.states import DigestFrequency, DigestState
from tests.support.config import make_settings
from tests.support.factories import MakeList, change_digest
from tests.support.sink import SmtpSink
from worker import digest
from worker.context import WorkerContext
from worker.digest import resend, send_digests
from worker.mailer import maildir_path

ANN = "ann@example.org"


def _week() -> Period:
    return last_complete_week(datetime.now(UTC).date())


def _at(day: int, hour: int = 9) -> datetime:
    """A moment of last complete week (day 0: its Monday)."""
    return datetime.combine(_week().start, time(hour), tzinfo=UTC) + timedelta(days=day)


def _reader(db: sessionmaker[Session], make_list: MakeList, frequency: str) -> None:
    """Ann, on dev's digest (at frequency) for a month before last week."""
    make_list("dev")
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), ANN, "digest")
        sub.digest_frequency, sub.confirmed_at = DigestFrequency(frequency), _at(-30)


def _post(db: sessionmaker[Session], message_id: str, when: datetime) -> None:
    with transaction(db) as session:
        raw = (
            f"From: Bob <bob@example.org>\r\nSubject: About {message_id}\r\n"
            f"Message-ID: <{message_id}>\r\n\r\nText of {message_id}.\r\n"
        ).encode()
        ingest(session, parse(raw), lists.require(session, "dev"), domain="lists.test")
        session.execute(
            update(Message).where(Message.message_id == message_id).values(received_at=when)
        )


def _digests(ctx: WorkerContext, seen: set[str]) -> list[tuple[str, list[str]]]:
    """(subject, Message-IDs of its posts) of each digest mailed since `seen`, by subject."""
    box = mailbox.Maildir(maildir_path(ctx.settings.outbound))
    found = []
    for key in sorted(set(box.keys()) - seen):
        seen.add(key)
        mail = box[key]
        posts = re.findall(rb"^Message-ID: <([a-z]+@x)>", mail.as_bytes(), re.MULTILINE)
        found.append((str(mail["Subject"]), [p.decode() for p in posts]))
    return sorted(found)


def test_daily_then_weekly_mid_week_gives_no_post_twice(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    ctx = WorkerContext(make_settings(tmp_path))
    _reader(db, make_list, "daily")
    seen: set[str] = set()
    _post(db, "monday@x", _at(0))
    assert send_digests(ctx, _week().start) == 1
    assert _digests(ctx, seen) == [
        (f"dev digest, {_week().start.isoformat()} (1 message)", ["monday@x"])
    ]

    change_digest(db, ANN, "weekly")  # on Tuesday: Monday's post came already in Monday's digest
    _post(db, "thursday@x", _at(3))
    assert send_digests(ctx, _week().start + timedelta(days=6)) == 1
    assert _digests(ctx, seen) == [
        (f"dev digest, week of {_week().start.isoformat()} (1 message)", ["thursday@x"])
    ], "the week's digest must hold only the post Ann did not have in Monday's digest"


def test_weekly_then_daily_gives_no_post_of_the_week_had_again(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    ctx = WorkerContext(make_settings(tmp_path))
    _reader(db, make_list, "weekly")
    seen: set[str] = set()
    _post(db, "saturday@x", _at(5))
    _post(db, "sunday@x", _at(6))
    sunday = _week().start + timedelta(days=6)
    assert send_digests(ctx, sunday) == 1
    assert _digests(ctx, seen) == [
        (
            f"dev digest, week of {_week().start.isoformat()} (2 messages)",
            ["saturday@x", "sunday@x"],
        )
    ]

    change_digest(db, ANN, "daily")  # after the week's digest came: its days are not sent again
    assert send_digests(ctx, sunday) == 0
    assert send_digests(ctx, sunday - timedelta(days=1)) == 0
    assert _digests(ctx, seen) == [], "the week's posts came already in the week's digest"


def test_a_daily_digest_deferred_then_weekly_brings_its_posts_once(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    """Monday's daily digest is deferred by the relay; Ann changes to weekly before it is sent
    again: the week's digest brings Monday's post, and the resend of Monday's is cancelled."""
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_OUTBOUND=sink.url))
    _reader(db, make_list, "daily")
    _post(db, "monday@x", _at(0))
    sink.script("451 4.3.0 try later")
    assert send_digests(ctx, _week().start) == 0

    change_digest(db, ANN, "weekly")
    _post(db, "thursday@x", _at(3))
    assert send_digests(ctx, _week().start + timedelta(days=6)) == 1
    with db() as session:
        entry = session.scalars(
            select(OutboxEntry).where(OutboxEntry.kind == dispatch.RESEND_DIGEST)
        ).one()
    assert resend(ctx, entry.id) == 0
    (weekly,) = sink.received
    ids = re.findall(rb"^Message-ID: <([a-z]+@x)>", weekly.data, re.MULTILINE)
    assert ids == [b"monday@x", b"thursday@x"], "Monday's post must come once, in the week's"
    with db() as session:
        assert dict(session.execute(select(DigestSent.frequency, DigestSent.status)).all()) == {
            DigestFrequency.DAILY: DigestState.CANCELLED,
            DigestFrequency.WEEKLY: DigestState.SENT,
        }


def test_weekly_then_daily_mid_week_loses_no_day_of_the_week(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann changes from weekly to daily on a Thursday: the week's digest no longer comes to her,
    so the first run after brings every day of the week so far, Monday's too (older than the
    usual catch-up of three days)."""
    ctx = WorkerContext(make_settings(tmp_path))
    _reader(db, make_list, "weekly")
    seen: set[str] = set()
    _post(db, "monday@x", _at(0))
    change_digest(db, ANN, "daily")
    _post(db, "thursday@x", _at(3))
    monkeypatch.setattr(digest, "default_day", lambda: _week().start + timedelta(days=3))
    assert send_digests(ctx) == 2
    monkeypatch.setattr(digest, "default_day", lambda: _week().start + timedelta(days=6))
    assert send_digests(ctx) == 0
    assert _digests(ctx, seen) == [
        (f"dev digest, {_week().start.isoformat()} (1 message)", ["monday@x"]),
        (
            f"dev digest, {(_week().start + timedelta(days=3)).isoformat()} (1 message)",
            ["thursday@x"],
        ),
    ], "every post of the week must come once, in the digest of its day"


def test_weekly_then_daily_with_the_next_run_after_the_week_loses_no_day_of_it(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann changes from weekly to daily on a Saturday; the beat is down that night and the
    next, so the first run after the change is Monday night's (its week is the one after). The
    week's digest no longer comes to her: its days come as daily digests, Monday's too."""
    ctx = WorkerContext(make_settings(tmp_path))
    _reader(db, make_list, "weekly")
    seen: set[str] = set()
    _post(db, "monday@x", _at(0))
    _post(db, "thursday@x", _at(3))
    change_digest(db, ANN, "daily")
    monkeypatch.setattr(digest, "default_day", lambda: _week().start + timedelta(days=7))
    send_digests(ctx)
    assert _digests(ctx, seen) == [
        (f"dev digest, {_week().start.isoformat()} (1 message)", ["monday@x"]),
        (
            f"dev digest, {(_week().start + timedelta(days=3)).isoformat()} (1 message)",
            ["thursday@x"],
        ),
    ], "every post of the week must come once, in the digest of its day"
