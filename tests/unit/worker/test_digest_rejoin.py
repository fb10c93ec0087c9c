"""A digest reader who leaves the list and comes back the same day gets that day's digest as
a newcomer of that day does: every post of the day not had one by one, once.

Decided: the digest of a day goes to whoever is on it at the day's end and holds the day's posts
they did not get one by one, those from before they came included (the journey of
tests/integration/test_journeys.py: "t1 (before she came)"). The row keeps only its last
start, so a return the same day cannot be told from a first subscription, nor from a switch to
every post and back (whose earlier posts are owed); leaving out the posts of while the reader
was away would need the stretches of membership kept.
"""

from __future__ import annotations

import mailbox
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Message
from tests.support.config import make_settings
from tests.support.factories import MakeList
from worker.context import WorkerContext
from worker.digest import send_digests
from worker.mailer import maildir_path

DEE = "dee@example.org"


def _yesterday(hour: int) -> datetime:
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(hour), tzinfo=UTC)


def _post(db: sessionmaker[Session], name: str, hour: int) -> None:
    with transaction(db) as session:
        raw = (
            f"From: bob@example.org\r\nSubject: {name}\r\nMessage-ID: <{name}@x>\r\n\r\n"
            f"The {name} post.\r\n"
        ).encode()
        ingest(session, parse(raw), lists.require(session, "dev"), domain="lists.test")
        session.execute(
            update(Message)
            .where(Message.message_id == f"{name}@x")
            .values(received_at=_yesterday(hour))
        )


def _digests(ctx: WorkerContext) -> list[list[str]]:
    box = mailbox.Maildir(maildir_path(ctx.settings.outbound))
    return [
        [
            m.decode()
            for m in re.findall(rb"^Message-ID: <([a-z]+@x)>", mail.as_bytes(), re.MULTILINE)
        ]
        for mail in box
    ]


def test_a_reader_back_the_same_day_gets_the_days_posts_once(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), DEE, "digest")
        sub.confirmed_at = _yesterday(0) - timedelta(days=5)
    _post(db, "before", 9)
    with transaction(db) as session:  # Dee leaves at 10, comes back at 12
        subscriptions.change(
            session, lists.require(session, "dev"), DEE, subscriptions.LEAVE, channel="web"
        )
    _post(db, "away", 11)
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), DEE, "digest")
        sub.confirmed_at = _yesterday(12)
    _post(db, "since", 13)
    ctx = WorkerContext(make_settings(tmp_path))
    assert send_digests(ctx) == 1 and send_digests(ctx) == 0
    assert _digests(ctx) == [["before@x", "away@x", "since@x"]]


def test_a_reader_who_left_and_did_not_come_back_gets_no_digest_of_the_day(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), DEE, "digest")
        sub.confirmed_at = _yesterday(0) - timedelta(days=5)
    _post(db, "before", 9)
    with transaction(db) as session:
        subscriptions.change(
            session, lists.require(session, "dev"), DEE, subscriptions.LEAVE, channel="web"
        )
    ctx = WorkerContext(make_settings(tmp_path))
    assert send_digests(ctx) == 0
