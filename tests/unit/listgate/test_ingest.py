"""ingest(): dedupe, policies, automatic mail, commands, and what is queued for after the commit."""

from __future__ import annotations

from typing import TypedDict, Unpack

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch
from listgate.addresses import Recipient
from listgate.db import transaction
from listgate.ingest import (
    COMMAND,
    DROPPED,
    DUPLICATE,
    HELD_FOR_MODERATION,
    REFUSED,
    STORED,
    VARIANT,
    IngestResult,
    ingest,
)
from listgate.lists import require, subscribe
from listgate.mail.parser import parse
from listgate.models import (
    MailingList,
    Message,
    MessageVariant,
    NotPosted,
    OutboxEntry,
    RawMessage,
    Subscription,
)
from listgate.states import SubscriptionState
from tests.support.factories import MakeList


class IngestOptions(TypedDict, total=False):
    """ingest's keywords the tests vary."""

    origin: str
    envelope_from: str | None
    recipient: Recipient | None


def post(
    db: sessionmaker[Session], raw: bytes, list_name: str = "dev", **kw: Unpack[IngestOptions]
) -> IngestResult:
    with transaction(db) as s:
        return ingest(s, parse(raw), require(s, list_name), domain="lists.test", **kw)


def mail(
    mid: str = "i1@x", frm: str = "ann@example.org", extra: str = "", body: str = "hello"
) -> bytes:
    return f"From: {frm}\r\nSubject: Topic\r\nMessage-ID: <{mid}>\r\n{extra}\r\n{body}\r\n".encode()


def rows(db: sessionmaker[Session], model: type) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def dev(make_list: MakeList) -> MailingList:
    return make_list("dev")


def test_a_post_is_stored_queued_for_fanout_and_its_author_follows_the_thread(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    r = post(db, mail(), envelope_from="ann@example.org")
    assert r.status == STORED and [e.kind for e in r.outbox] == [dispatch.FANOUT]
    with db() as s:
        follow = s.scalars(select(Subscription).where(Subscription.kind == "thread")).one()
        assert (follow.address, follow.thread_key) == ("ann@example.org", r.thread_id)


def test_the_same_bytes_again_are_a_duplicate_with_no_new_work(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    first = post(db, mail())
    again = post(db, mail())
    assert again.status == DUPLICATE and again.message_pk == first.message_pk and again.outbox == []
    assert rows(db, Message) == 1 and rows(db, RawMessage) == 1


def test_other_bytes_with_an_archived_message_id_are_kept_as_a_variant_and_not_sent(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    first = post(db, mail())
    other = post(db, mail(body="a different body, same id"))
    assert other.status == VARIANT and other.message_pk == first.message_pk and other.outbox == []
    assert rows(db, Message) == 1 and rows(db, RawMessage) == 2 and rows(db, MessageVariant) == 1
    assert post(db, mail(body="a different body, same id")).status == DUPLICATE
    assert rows(db, MessageVariant) == 1


def test_the_same_bytes_on_two_lists_share_one_raw_row(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    make_list("ops")
    post(db, mail(), "dev")
    post(db, mail(), "ops")
    assert rows(db, Message) == 2 and rows(db, RawMessage) == 1


@pytest.mark.parametrize(
    "extra,envelope",
    [
        ("Auto-Submitted: auto-replied\r\n", "a@example.org"),
        ("Auto-Submitted: auto-generated; type=vacation\r\n", "a@example.org"),
        ("Precedence: auto_reply\r\n", "a@example.org"),
        ("X-Autorespond: on\r\n", "a@example.org"),
        ("X-AutoReply-From: a@example.org\r\n", "a@example.org"),
        ("X-Listgate-Loop: lists.test\r\n", "a@example.org"),
        ("", "<>"),
    ],
)
def test_automatic_mail_is_not_posted_and_kept_with_its_reason(
    db: sessionmaker[Session], dev: MailingList, extra: str, envelope: str
) -> None:
    r = post(db, mail(extra=extra), envelope_from=envelope)
    assert r.status == DROPPED and r.reason and r.outbox == []
    assert rows(db, Message) == 0
    with db() as session:
        kept = session.scalars(select(NotPosted)).one()
    assert kept.reason == r.reason and kept.message_id == "i1@x" and kept.released_at is None


@pytest.mark.parametrize("precedence", ["list", "bulk", "junk"])
def test_precedence_alone_does_not_stop_a_post(
    db: sessionmaker[Session], dev: MailingList, precedence: str
) -> None:
    """How another list (or an archive subscribed to one)
    sends its posts: they must be archived and sent.
    """
    r = post(
        db, mail(extra=f"Precedence: {precedence}\r\n"), envelope_from="owner-other@example.org"
    )
    assert r.status == STORED and [e.kind for e in r.outbox] == [dispatch.FANOUT]
    assert rows(db, NotPosted) == 0


def test_auto_submitted_no_is_a_person(db: sessionmaker[Session], dev: MailingList) -> None:
    assert (
        post(db, mail(extra="Auto-Submitted: no\r\n"), envelope_from="a@example.org").status
        == STORED
    )


def test_import_keeps_automatic_mail_and_queues_nothing(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    r = post(db, mail(extra="Precedence: bulk\r\n"), origin="import")
    assert r.status == STORED and r.outbox == [] and rows(db, OutboxEntry) == 0


def test_a_member_suspended_by_bounces_still_posts_to_a_members_only_list(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    """Bounces stop a member's mail, not their membership (their post is not held as a
    stranger's is)."""
    make_list("club", policy="members")
    with transaction(db) as s:
        subscribe(s, require(s, "club"), "member@example.org").status = SubscriptionState.SUSPENDED
    assert post(db, mail("m@x", frm="member@example.org"), "club").status == STORED


def test_members_policy_holds_strangers_and_queues_one_notice_and_one_moderators_mail(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("club", policy="members")
    with transaction(db) as s:
        subscribe(s, require(s, "club"), "member@example.org")
    assert post(db, mail("m@x", frm="member@example.org"), "club").status == STORED
    held = post(db, mail("s@x", frm="stranger@example.org"), "club")
    assert held.status == HELD_FOR_MODERATION
    assert [e.kind for e in held.outbox] == [dispatch.SEND_NOTICE, dispatch.NOTIFY_MODERATORS]
    # a retry: no second notice
    assert post(db, mail("s@x", frm="stranger@example.org"), "club").status == DUPLICATE
    with db() as s:
        for kind in (dispatch.SEND_NOTICE, dispatch.NOTIFY_MODERATORS):
            assert (
                s.scalar(
                    select(func.count()).select_from(OutboxEntry).where(OutboxEntry.kind == kind)
                )
                == 1
            )
        assert require(s, "club").message_count == 1  # held posts are not counted until approved


def test_command_addresses_queue_work_and_archive_nothing(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    r = post(db, mail(), recipient=Recipient("dev", "subscribe"), envelope_from="ann@example.org")
    assert r.status == COMMAND and [e.kind for e in r.outbox] == [dispatch.HANDLE_COMMAND]
    b = post(db, mail("b@x"), recipient=Recipient("dev", "bounce", "tok123"), envelope_from="<>")
    assert b.status == COMMAND and [e.kind for e in b.outbox] == [dispatch.HANDLE_BOUNCE]
    assert rows(db, Message) == 0


def test_a_banned_sender_is_not_posted_and_told_why(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    from listgate.models.web import Ban

    with transaction(db) as s:
        s.add(Ban(list_id=dev.id, address="troll@example.org"))
    by_from = post(
        db, mail("b1@x", frm="Troll <Troll@Example.org>"), envelope_from="troll@example.org"
    )
    by_envelope = post(
        db, mail("b2@x", frm="sock@example.org"), envelope_from="<troll@example.org>"
    )
    for r in (by_from, by_envelope):
        assert r.status == REFUSED and "banned" in r.reason and r.outbox == []
    assert rows(db, Message) == 0
    # the ban is per list, and an import of old archives is not a post
    assert post(db, mail("b3@x", frm="troll@example.org"), origin="import").status == STORED
    unsub = post(
        db, mail("b4@x", frm="troll@example.org"), recipient=Recipient("dev", "unsubscribe", "")
    )
    assert unsub.status == COMMAND  # a banned person can still leave the list


def test_a_post_with_attachments_stores_each_content_once(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    from listgate.models import Attachment, Blob

    def with_file(mid: str) -> bytes:
        return (
            f"From: ann@example.org\r\nSubject: Files\r\nMessage-ID: <{mid}>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            "Content-Type: text/plain\r\n\r\nsee\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=a.bin\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n"
        ).encode()

    first, second = post(db, with_file("f1@x")), post(db, with_file("f2@x"))
    assert first.status == second.status == STORED
    assert rows(db, Attachment) == 2 and rows(db, Blob) == 1
    with db() as s:
        att = s.scalars(select(Attachment).where(Attachment.message_pk == second.message_pk)).one()
        assert (att.filename, att.size) == ("a.bin", 4)
