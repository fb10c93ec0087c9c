"""Who hears of held posts and reports, and the one daily reminder."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists, moderation
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Message, OutboxEntry, Report
from tests.support.config import make_settings
from tests.support.factories import MakeList, stored_pk
from worker import moderation as worker_moderation
from worker.context import WorkerContext


def held(db: sessionmaker[Session], name: str, n: int = 1) -> int:
    raw = (
        f"From: a@example.org\r\nSubject: Held {n}\r\nMessage-ID: <h{n}-{name}@x>\r\n"
        f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nText\r\n"
    ).encode()
    with transaction(db) as session:
        result = ingest(session, parse(raw), lists.require(session, name), domain="lists.test")
    assert result.status == "held"
    return stored_pk(result)


def notices_of(
    db: sessionmaker[Session], entry_kind: str, ref_id: int, payload: dict
) -> list[dict]:
    """Run the worker's notify on a NOTIFY_MODERATORS entry; the notices it queued."""
    settings = make_settings(Path(tempfile.mkdtemp()), LISTGATE_ADMINS="root@example.org")
    with transaction(db) as session:
        entry = dispatch.record(session, entry_kind, ref_id, payload)
        queued = worker_moderation.notify(session, settings, entry)
    return [json.loads(e.payload) for e in queued]


def test_a_held_post_mails_each_moderator_with_the_post_and_both_addresses(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("club", policy="moderated", moderators="m1@example.org,m2@example.org")
    pk = held(db, "club")
    found = notices_of(
        db, dispatch.NOTIFY_MODERATORS, pk, {"event": "held", "reason": "every post is moderated"}
    )
    assert sorted(n["to"] for n in found) == ["m1@example.org", "m2@example.org"]
    with db() as session:
        msg = session.get_one(Message, pk)
    assert all(n["template"] == "moderate" and n["attach_raw_id"] == msg.raw_id for n in found)
    assert (
        found[0]["approve"].startswith("club+approve-")
        and found[0]["reply_to"] == found[0]["reject"]
    )


def test_reports_go_to_owners_when_there_are_no_moderators_then_to_site_admins(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("owned", owners="o@example.org")
    make_list("bare")
    for name, expected in (("owned", ["o@example.org"]), ("bare", ["root@example.org"])):
        raw = (
            f"From: a@example.org\r\nSubject: Hi\r\nMessage-ID: <r-{name}@x>\r\n\r\nText\r\n"
        ).encode()
        with transaction(db) as session:
            pk = ingest(
                session, parse(raw), lists.require(session, name), domain="lists.test"
            ).message_pk
            report = Report(
                message_pk=pk,
                list_id=lists.require(session, name).id,
                address="r@x.org",
                reason="rude",
            )
            session.add(report)
            session.flush()
            entry = moderation.report_recorded(session, report)
        found = notices_of(db, entry.kind, entry.ref_id, json.loads(entry.payload))
        assert [(n["to"], n["template"], n["reason"]) for n in found] == [
            (expected[0], "report", "rude")
        ]


def test_a_post_approved_before_the_mail_went_out_is_not_mailed(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("club", policy="moderated", moderators="m@example.org")
    pk = held(db, "club")
    with transaction(db) as session:
        session.execute(update(Message).where(Message.id == pk).values(status="visible"))
    assert notices_of(db, dispatch.NOTIFY_MODERATORS, pk, {"event": "held"}) == []


def test_one_reminder_a_day_of_posts_held_long_enough(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("club", policy="moderated", moderators="m@example.org")
    old, new = held(db, "club", 1), held(db, "club", 2)
    # a morning (UTC), so that three hours later is the same day whenever the test runs (it
    # failed between 21:00 and midnight); the post held just now is under 12 hours old then
    now = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    with transaction(db) as session:
        session.execute(
            update(Message).where(Message.id == old).values(received_at=now - timedelta(hours=13))
        )
    ctx = WorkerContext(make_settings(tmp_path))
    assert worker_moderation.send_reminders(ctx, now) == 1
    # same day: no second one
    assert worker_moderation.send_reminders(ctx, now + timedelta(hours=3)) == 0
    with db() as session:
        (entry,) = session.scalars(
            select(OutboxEntry).where(OutboxEntry.payload.contains('"reminder"'))
        ).all()
    payload = json.loads(entry.payload)
    assert payload["to"] == "m@example.org" and payload["count"] == 1
    assert "Held 1" in payload["posts"] and "Held 2" not in payload["posts"] and new
    # the next day: again
    assert worker_moderation.send_reminders(ctx, now + timedelta(days=1)) == 1
