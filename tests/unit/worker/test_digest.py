"""The daily digest: catches up missed days, only for people subscribed that day, once."""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.digests import Period
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Bounce, DigestSent, Message, OutboxEntry, Subscription
from listgate.states import BounceKind, DigestFrequency, DigestState
from tests.support.config import make_settings
from tests.support.factories import MakeList
from tests.support.sink import SmtpSink, payload
from tests.support.states import foreign_words
from worker.context import WorkerContext
from worker.digest import _claim, resend, send_digests
from worker.mailer import maildir_path


def test_daily_job_sends_yesterday_once_to_who_was_subscribed(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    # the same data dir as `db`: outbound is the embedded Maildir
    settings = make_settings(tmp_path)
    make_list("dev")
    now = datetime.now(UTC)
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        old = lists.subscribe(session, mlist, "old@example.org", "digest")
        new = lists.subscribe(session, mlist, "new@example.org", "digest")
        old.confirmed_at = now - timedelta(days=5)
        for n in range(2):
            raw = (
                f"From: a@example.org\r\nSubject: T{n}\r\nMessage-ID: <d{n}@x>\r\n\r\nhi\r\n"
            ).encode()
            ingest(session, parse(raw), mlist, domain="lists.test")
        session.execute(update(Message).values(received_at=now - timedelta(days=1)))
        new.confirmed_at = now
    ctx = WorkerContext(settings)
    assert send_digests(ctx) == 1
    assert send_digests(ctx) == 0
    (digest,) = list(mailbox.Maildir(maildir_path(settings.outbound)))
    assert digest["Delivered-To"] == "old@example.org"
    assert digest.get_content_type() == "multipart/digest"
    assert len(digest.get_payload()) == 3  # the table of contents and both posts


def _week_of_posts(
    db: sessionmaker[Session], settings: Settings, make_list: MakeList, fmt: str
) -> WorkerContext:
    """Two posts last week, one daily and one weekly reader (the weekly one wants `fmt`)."""
    from listgate.digests import last_complete_week
    from listgate.models import Person

    make_list("town")
    week = last_complete_week(datetime.now(UTC).date())
    wednesday = datetime.combine(week.start, datetime.min.time(), tzinfo=UTC) + timedelta(
        days=2, hours=9
    )
    with transaction(db) as session:
        mlist = lists.require(session, "town")
        for address, frequency in (
            ("daily@example.org", DigestFrequency.DAILY),
            ("weekly@example.org", DigestFrequency.WEEKLY),
        ):
            sub = lists.subscribe(session, mlist, address, "digest")
            sub.digest_frequency, sub.confirmed_at = frequency, wednesday - timedelta(days=30)
        session.add(Person(address="weekly@example.org", name="", digest_format=fmt))
        for n, body in enumerate(
            (
                "The bridge closes on Monday.\n------------------------------\nsigned",
                "Market moves to the square.",
            )
        ):
            raw = (
                f"From: Ann <a@example.org>\r\nSubject: Topic {n}\r\nMessage-ID: <w{n}@x>\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            ).encode()
            ingest(session, parse(raw), mlist, domain="lists.test")
        session.execute(update(Message).values(received_at=wednesday))
    return WorkerContext(settings)


def test_a_weekly_reader_gets_last_week_once_and_a_daily_reader_only_days(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    settings = make_settings(tmp_path)
    ctx = _week_of_posts(db, settings, make_list, "mime")
    # a run covers every day of the last complete week: the daily reader has Wednesday's digest
    assert send_digests(ctx) == 2 and send_digests(ctx) == 0
    mails = {m["Delivered-To"]: m for m in mailbox.Maildir(maildir_path(settings.outbound))}
    assert "town digest, 20" in mails["daily@example.org"]["Subject"]
    digest = mails["weekly@example.org"]
    assert (
        "town digest, week of" in digest["Subject"]
        and digest.get_content_type() == "multipart/digest"
    )
    assert digest["List-Post"] == "<mailto:town@lists.test>"
    assert digest["Message-ID"].startswith("<digest.weekly.")


def test_the_plain_digest_follows_rfc_1153(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    settings = make_settings(tmp_path)
    ctx = _week_of_posts(db, settings, make_list, "plain")
    assert send_digests(ctx) == 2  # the week's to the weekly reader, Wednesday's to the daily one
    (digest,) = [
        m
        for m in mailbox.Maildir(maildir_path(settings.outbound))
        if m["Delivered-To"] == "weekly@example.org"
    ]
    assert digest.get_content_type() == "text/plain"
    text = payload(digest).decode()
    assert "-" * 70 in text and text.count("\n" + "-" * 30 + "\n") == 2  # one after each post
    assert "- ------------------------------" in text  # a separator inside a post is escaped
    assert "Subject: Topic 0" in text and "Message-ID: <w1@x>" in text
    assert (
        "Reply: mailto:town@lists.test?subject=Re%3A%20Topic%201&In-Reply-To=%3Cw1%40x%3E" in text
    )
    assert text.rstrip().endswith("*" * len(text.rstrip().splitlines()[-2]))


def test_a_digest_is_claimed_by_one_run_and_a_deferred_one_taken_back_once(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    """The claim over time: new, it is taken (SENDING)
    once; deferred, taken back once; sent, never again.
    """
    ctx = WorkerContext(make_settings(tmp_path))
    list_id, period = make_list("dev").id, Period(DigestFrequency.DAILY, date(2026, 11, 24))
    stamp = datetime.now(UTC)
    first = _claim(ctx, list_id, "ann@example.org", period, stamp)
    assert first is not None and _claim(ctx, list_id, "ann@example.org", period, stamp) is None
    assert _claim(ctx, list_id, "bob@example.org", period, stamp) not in (
        None,
        first,
    )  # another subscriber's row
    with transaction(db) as session:
        assert session.get_one(DigestSent, first).status is DigestState.SENDING
        session.execute(
            update(DigestSent).where(DigestSent.id == first).values(status=DigestState.DEFERRED)
        )
    assert _claim(ctx, list_id, "ann@example.org", period, stamp) == first
    assert _claim(ctx, list_id, "ann@example.org", period, stamp) is None
    with transaction(db) as session:
        assert session.get_one(DigestSent, first).status is DigestState.SENDING
        session.execute(
            update(DigestSent).where(DigestSent.id == first).values(status=DigestState.SENT)
        )
    assert _claim(ctx, list_id, "ann@example.org", period, stamp) is None
    with db() as session:
        assert session.scalar(select(func.count()).select_from(DigestSent)) == 2
        assert foreign_words(session) == {}


def _todays_digest_reader(
    db: sessionmaker[Session], make_list: MakeList, address: str
) -> Subscription:
    """A daily digest reader of dev (for five days now), and one post today."""
    make_list("dev")
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        sub = lists.subscribe(session, mlist, address, "digest")
        sub.confirmed_at = datetime.now(UTC) - timedelta(days=5)
        raw = b"From: a@example.org\r\nSubject: Today\r\nMessage-ID: <t1@x>\r\n\r\nhi\r\n"
        ingest(session, parse(raw), mlist, domain="lists.test")
    return sub


def _bounces(db: sessionmaker[Session]) -> list[tuple[str, int | None, BounceKind, float]]:
    """(address, subscription id, kind, that subscription's score) of every Bounce row."""
    with db() as session:
        return [
            (
                b.address,
                b.subscription_id,
                b.kind,
                session.get_one(Subscription, b.subscription_id).bounce_score,
            )
            for b in session.scalars(select(Bounce).order_by(Bounce.id))
        ]


def test_a_digest_refused_at_rcpt_counts_against_its_reader_and_a_refused_message_does_not(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    """Scored as a post's copy is: a 5xx at RCPT is the reader's; a 5xx to the message itself
    (its size) is a refused message, recorded and counted against nobody."""
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_OUTBOUND=sink.url))
    today = datetime.now(UTC).date()
    gone = _todays_digest_reader(db, make_list, "gone@example.org")
    with sink.handler.lock:
        sink.handler.refused_rcpts["gone@example.org"] = (
            "550 5.1.1 <gone@example.org>: no such user"
        )
    assert send_digests(ctx, today) == 0
    assert _bounces(db) == [("gone@example.org", gone.id, BounceKind.PERMANENT, 1.0)]

    with transaction(db) as session:  # sent again (its row gone): refused for its size
        session.execute(update(Bounce).values(digest_id=None))  # the row's report, kept
        session.execute(delete(DigestSent))
    with sink.handler.lock:
        sink.handler.refused_rcpts.clear()
    sink.script("552 5.3.4 Message too big for system")
    assert send_digests(ctx, today) == 0
    assert _bounces(db)[1:] == [("gone@example.org", gone.id, BounceKind.REFUSED, 1.0)]
    with db() as session:
        assert session.scalar(select(DigestSent.status)) is DigestState.BOUNCED


def test_a_deferred_digest_refused_after_its_reader_came_back_counts(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    """A digest deferred, then its reader leaves and comes back, then the resend is refused at
    RCPT: the refusal is about the mailbox now (the try), not about a copy sent before the
    return, so it counts against the fresh subscription."""
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_OUTBOUND=sink.url))
    pat = _todays_digest_reader(db, make_list, "pat@example.org")
    sink.script("451 4.3.0 try later")
    assert send_digests(ctx, datetime.now(UTC).date()) == 0
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        subscriptions.end(session, [session.get_one(Subscription, pat.id)], "left (web)")
        back = subscriptions.start(session, mlist, "pat@example.org", "digest")
        assert back.id == pat.id and back.confirmed_at is not None
        row = session.scalars(select(DigestSent)).one()
        assert row.status is DigestState.DEFERRED and row.created_at < back.confirmed_at
        entry = session.scalars(
            select(OutboxEntry).where(OutboxEntry.kind == dispatch.RESEND_DIGEST)
        ).one()
    with sink.handler.lock:
        sink.handler.refused_rcpts["pat@example.org"] = "550 5.2.1 <pat@example.org>: disabled"
    assert resend(ctx, entry.id) == 0
    assert _bounces(db) == [("pat@example.org", pat.id, BounceKind.PERMANENT, 1.0)]
