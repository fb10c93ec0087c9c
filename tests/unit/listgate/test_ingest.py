"""ingest(): dedupe, policies, automatic mail, commands, and what is queued for after the commit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch
from listgate.addresses import Recipient
from listgate.db import transaction
from listgate.ingest import COMMAND, DROPPED, DUPLICATE, HELD_FOR_MODERATION, STORED, IngestResult, ingest
from listgate.lists import require, subscribe
from listgate.models import Message, OutboxEntry, RawMessage, Subscription
from listgate.parsing import parse


def post(db: sessionmaker[Session], raw: bytes, list_name: str = "dev", **kw: object) -> IngestResult:
    with transaction(db) as s:
        return ingest(s, parse(raw), require(s, list_name), domain="lists.test", **kw)  # type: ignore[arg-type]


def mail(mid: str = "i1@x", frm: str = "ann@example.org", extra: str = "", body: str = "hello") -> bytes:
    return f"From: {frm}\r\nSubject: Topic\r\nMessage-ID: <{mid}>\r\n{extra}\r\n{body}\r\n".encode()


def rows(db: sessionmaker[Session], model: type) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def dev(make_list):  # type: ignore[no-untyped-def]
    return make_list("dev")


def test_a_post_is_stored_queued_for_fanout_and_its_author_follows_the_thread(db, dev) -> None:  # type: ignore[no-untyped-def]
    r = post(db, mail(), envelope_from="ann@example.org")
    assert r.status == STORED and [e.kind for e in r.outbox] == [dispatch.FANOUT]
    with db() as s:
        follow = s.scalars(select(Subscription).where(Subscription.kind == "thread")).one()
        assert (follow.address, follow.thread_key) == ("ann@example.org", r.thread_id)


def test_the_same_message_id_is_a_duplicate_with_no_new_work(db, dev) -> None:  # type: ignore[no-untyped-def]
    first = post(db, mail())
    again = post(db, mail(body="a different body, same id"))
    assert again.status == DUPLICATE and again.message_pk == first.message_pk and again.outbox == []
    assert rows(db, Message) == 1 and rows(db, RawMessage) == 1


def test_the_same_bytes_on_two_lists_share_one_raw_row(db, make_list) -> None:  # type: ignore[no-untyped-def]
    make_list("dev")
    make_list("ops")
    post(db, mail(), "dev")
    post(db, mail(), "ops")
    assert rows(db, Message) == 2 and rows(db, RawMessage) == 1


@pytest.mark.parametrize("extra,envelope", [
    ("Auto-Submitted: auto-replied\r\n", "a@example.org"),
    ("Auto-Submitted: auto-generated; type=vacation\r\n", "a@example.org"),
    ("Precedence: junk\r\n", "a@example.org"),
    ("X-Autorespond: on\r\n", "a@example.org"),
    ("X-Listgate-Loop: lists.test\r\n", "a@example.org"),
    ("", "<>"),
])
def test_automatic_mail_is_dropped_with_a_reason(db, dev, extra: str, envelope: str) -> None:  # type: ignore[no-untyped-def]
    r = post(db, mail(extra=extra), envelope_from=envelope)
    assert r.status == DROPPED and r.reason and r.outbox == []
    assert rows(db, Message) == 0


def test_auto_submitted_no_is_a_person(db, dev) -> None:  # type: ignore[no-untyped-def]
    assert post(db, mail(extra="Auto-Submitted: no\r\n"), envelope_from="a@example.org").status == STORED


def test_import_keeps_automatic_mail_and_queues_nothing(db, dev) -> None:  # type: ignore[no-untyped-def]
    r = post(db, mail(extra="Precedence: bulk\r\n"), origin="import")
    assert r.status == STORED and r.outbox == [] and rows(db, OutboxEntry) == 0


def test_members_policy_holds_strangers_and_queues_one_notice(db, make_list) -> None:  # type: ignore[no-untyped-def]
    make_list("club", policy="members")
    with transaction(db) as s:
        subscribe(s, require(s, "club"), "member@example.org")
    assert post(db, mail("m@x", frm="member@example.org"), "club").status == STORED
    held = post(db, mail("s@x", frm="stranger@example.org"), "club")
    assert held.status == HELD_FOR_MODERATION and [e.kind for e in held.outbox] == [dispatch.SEND_NOTICE]
    assert post(db, mail("s@x", frm="stranger@example.org"), "club").status == DUPLICATE  # a retry: no second notice
    with db() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.kind == dispatch.SEND_NOTICE)) == 1
        assert require(s, "club").message_count == 1  # held posts are not counted until approved


def test_command_addresses_queue_work_and_archive_nothing(db, dev) -> None:  # type: ignore[no-untyped-def]
    r = post(db, mail(), recipient=Recipient("dev", "subscribe"), envelope_from="ann@example.org")
    assert r.status == COMMAND and [e.kind for e in r.outbox] == [dispatch.HANDLE_COMMAND]
    b = post(db, mail("b@x"), recipient=Recipient("dev", "bounce", "tok123"), envelope_from="<>")
    assert b.status == COMMAND and [e.kind for e in b.outbox] == [dispatch.HANDLE_BOUNCE]
    assert rows(db, Message) == 0
