"""A digest reader who leaves the list and comes back the same day: the day's digest holds the
posts published since the subscription started again, not those of while the reader was away.

A post published while the address was not a member is not owed to it (as no copy of it would
have been sent to it on every post); the row keeps only when it last started, so the posts of
the day before the reader left are not owed either: leaving gave up the day's digest, and a
return starts afresh, as a new subscription does.
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


def test_a_reader_back_the_same_day_gets_only_the_posts_since(
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
        sub.ended_at, sub.confirmed_at = _yesterday(10), _yesterday(12)
    _post(db, "since", 13)
    ctx = WorkerContext(make_settings(tmp_path))
    assert send_digests(ctx) == 1
    assert _digests(ctx) == [["since@x"]], (
        "the posts published before Dee came back are not owed to her"
    )


def test_a_reader_who_joins_mid_day_gets_the_posts_since(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    _post(db, "before", 9)
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), DEE, "digest")
        sub.confirmed_at = _yesterday(12)
    _post(db, "since", 13)
    ctx = WorkerContext(make_settings(tmp_path))
    assert send_digests(ctx) == 1
    assert _digests(ctx) == [["since@x"]]
