"""The moderators' daily reminder on PostgreSQL: once per list and day, as on SQLite.

The day's reminder row is claimed by INSERT … ON CONFLICT DO NOTHING and its row count; psycopg
gives -1 for it unless asked, which read as "claimed" and mailed the moderators at every run of
the scheduler's reminder task.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Message
from worker import moderation as worker_moderation
from worker.context import WorkerContext

pytestmark = pytest.mark.integration


def test_one_reminder_a_day_on_postgresql(
    pg_settings: Settings, pg_db: sessionmaker[Session]
) -> None:
    raw = (
        b"From: a@example.org\r\nSubject: Held\r\nMessage-ID: <held@x.test>\r\n"
        b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nText\r\n"
    )
    # a morning (UTC): three hours later is the same day whenever the test runs
    now = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    with transaction(pg_db) as session:
        club = lists.create(session, "club", policy="moderated", moderators="m@example.org")
        assert ingest(session, parse(raw), club, domain="lists.test").status == "held"
        session.execute(update(Message).values(received_at=now - timedelta(hours=13)))
    ctx = WorkerContext(pg_settings)
    try:
        assert worker_moderation.send_reminders(ctx, now) == 1
        assert worker_moderation.send_reminders(ctx, now + timedelta(hours=3)) == 0
        assert worker_moderation.send_reminders(ctx, now + timedelta(days=1)) == 1
    finally:
        ctx.dispose()
