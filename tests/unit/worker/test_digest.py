"""The daily digest: catches up missed days, only for people subscribed that day, once."""

from __future__ import annotations

import mailbox
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from listgate import lists
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.models import Message
from listgate.parsing import parse
from tests.conftest import make_settings
from worker.context import WorkerContext
from worker.digest import send_digests
from worker.mailer import maildir_path


def test_daily_job_sends_yesterday_once_to_who_was_subscribed(tmp_path, db, make_list) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)  # the same data dir as `db`: outbound is the embedded Maildir
    make_list("dev")
    now = datetime.now(timezone.utc)
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        old = lists.subscribe(session, mlist, "old@example.org", "digest")
        new = lists.subscribe(session, mlist, "new@example.org", "digest")
        old.confirmed_at = now - timedelta(days=5)
        for n in range(2):
            raw = f"From: a@example.org\r\nSubject: T{n}\r\nMessage-ID: <d{n}@x>\r\n\r\nhi\r\n".encode()
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
