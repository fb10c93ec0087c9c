"""Replies to a whole digest: which entry they answer, or none when it cannot be told."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from listgate import digests, lists, moderation, threads
from listgate.db import transaction
from listgate.ingest import HELD_FOR_MODERATION, STORED, IngestResult, ingest
from listgate.mail.parser import parse
from listgate.models import Message, Thread
from listgate.states import DigestFrequency
from tests.support.factories import MakeList, stored_pk

PERIOD = digests.Period(DigestFrequency.WEEKLY, date(2026, 11, 16))
DIGEST_ID = "digest.weekly.20261116.abc123@lists.test"
BODIES = {
    "b@x": (
        "Bridge repairs",
        "The bridge closes on Monday for repairs.\nDetours through the park.",
    ),
    "m@x": ("Market day", "The market moves to the church square.\nStalls open at seven."),
    "m2@x": ("Market day", "Same subject, another post about the market stalls."),
}


def mail(msgid: str, subject: str, body: str, extra: str = "") -> bytes:
    return (
        f"From: r@example.org\r\nTo: town@lists.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{msgid}>\r\n{extra}"
        f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


def town(db: sessionmaker[Session], make_list: MakeList) -> None:
    make_list("town", title="Town")
    with transaction(db) as session:
        mlist = lists.require(session, "town")
        for msgid, (subject, body) in BODIES.items():
            ingest(session, parse(mail(msgid, subject, body)), mlist, domain="lists.test")
        session.execute(update(Message).values(received_at=datetime(2026, 11, 18, 9, tzinfo=UTC)))


def reply(
    db: sessionmaker[Session], subject: str, body: str, refs: bool = True
) -> tuple[IngestResult, str, str | None]:
    extra = f"In-Reply-To: <{DIGEST_ID}>\r\nReferences: <{DIGEST_ID}>\r\n" if refs else ""
    with transaction(db) as session:
        result = ingest(
            session,
            parse(mail(f"r{abs(hash(body))}@x", subject, body, extra)),
            lists.require(session, "town"),
            domain="lists.test",
        )
        msg = session.get_one(Message, result.message_pk)
        parent = session.get(Message, msg.parent_id) if msg.parent_id else None
        return result, msg.subject, parent.message_id if parent else None


def test_a_quote_names_the_entry(db: sessionmaker[Session], make_list: MakeList) -> None:
    town(db, make_list)
    result, subject, parent = reply(
        db,
        "Re: Town digest, week of 2026-11-16 (3 messages)",
        "Count me in.\n\n> The bridge closes on Monday for repairs.\n",
    )
    assert (result.status, subject, parent) == (STORED, "Re: Bridge repairs", "b@x")


def test_a_changed_subject_names_the_entry_even_without_references(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    town(db, make_list)
    result, _, parent = reply(db, "Re: Bridge repairs", "Good.", refs=True)
    assert (result.status, parent) == (STORED, "b@x")


def test_the_digest_subject_alone_is_recognised(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    town(db, make_list)
    result, _, parent = reply(
        db,
        "Re: Town digest, week of 2026-11-16 (3 messages)",
        "> Stalls open at seven.\nThanks",
        refs=False,
    )
    assert (result.status, parent) == (STORED, "m@x")


def test_a_reply_that_cannot_be_told_is_held_not_threaded(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    town(db, make_list)
    for body in (
        "Nice digest!",
        "> market stalls\n> church square",
    ):  # nothing quoted / too short to tell
        result, _, parent = reply(db, "Re: Town digest, week of 2026-11-16 (3 messages)", body)
        assert result.status == HELD_FOR_MODERATION and parent is None
        assert [e.kind for e in result.outbox] == [
            "listgate.send_notice",
            "listgate.notify_moderators",
        ]
        assert '"template": "digest_reply"' in result.outbox[0].payload


def test_an_equal_score_is_ambiguous(db: sessionmaker[Session], make_list: MakeList) -> None:
    town(db, make_list)
    body = "> The bridge closes on Monday for repairs.\n> The market moves to the church square.\n"
    result, _, _ = reply(db, "Re: Town digest, week of 2026-11-16 (3 messages)", body)
    assert result.status == HELD_FOR_MODERATION


def test_a_digest_id_of_another_domain_is_an_ordinary_reference(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    town(db, make_list)
    with transaction(db) as session:
        parsed = parse(
            mail(
                "o@x",
                "Re: things",
                "hi",
                "In-Reply-To: <digest.weekly.20261116.abc@evil.example>\r\n",
            )
        )
        assert digests.period_of(parsed, lists.require(session, "town"), "lists.test") is None


def approve(db: sessionmaker[Session], message_pk: int) -> tuple[str, str | None, str]:
    """A moderator approves a held reply: (its thread's
    subject, its parent's Message-ID, its status).
    """
    with transaction(db) as session:
        msg = session.get_one(Message, message_pk)
        moderation.approve(session, lists.require(session, "town"), msg, "mod@example.org")
    with db() as session:
        msg = session.get_one(Message, message_pk)
        parent = session.get(Message, msg.parent_id) if msg.parent_id else None
        thread = threads.resolve(session, msg.thread_id)
        assert thread is not None
        return thread.subject, parent.message_id if parent else None, msg.status


def digest_threads(db: sessionmaker[Session]) -> list[str]:
    with db() as session:
        return [
            s
            for s in session.scalars(select(Thread.subject).where(Thread.message_count > 0))
            if "digest" in s
        ]


def test_an_ambiguous_reply_once_approved_threads_under_the_first_entry_it_quotes(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    town(db, make_list)
    body = (
        "> The market moves to the church square.\n> The bridge closes on Monday for repairs.\n\n"
        "Both fine."
    )
    result, _, _ = reply(db, "Re: Town digest, week of 2026-11-16 (3 messages)", body)
    # which one it answers cannot be told: the author gets the hint
    assert result.status == HELD_FOR_MODERATION
    # Approved anyway: under the first of the entries it
    # quotes most, in the digest's order (the bridge).
    assert approve(db, stored_pk(result)) == ("Bridge repairs", "b@x", "visible")
    assert digest_threads(db) == []


def test_a_reply_naming_no_entry_once_approved_keeps_its_own_subject_or_none(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    town(db, make_list)
    # an own subject, the digest's id
    picnic, _, _ = reply(db, "Picnic on Sunday?", "Who brings the blankets?")
    thanks, _, _ = reply(db, "Re: Town digest, week of 2026-11-16 (3 messages)", "Nice digest!")
    again, _, _ = reply(
        db, "Re: Town digest, week of 2026-11-16 (3 messages)", "Thanks for sending it.", refs=False
    )
    assert {r.status for r in (picnic, thanks, again)} == {HELD_FOR_MODERATION}
    assert approve(db, stored_pk(picnic)) == ("Picnic on Sunday?", None, "visible")
    # The digest's subject names no topic: such a reply starts a thread of its own, without a
    # subject, and two of them are not joined into one thread by that subject.
    assert approve(db, stored_pk(thanks)) == ("", None, "visible")
    assert approve(db, stored_pk(again)) == ("", None, "visible")
    with db() as session:
        assert (
            len({session.get_one(Message, r.message_pk).thread_id for r in (picnic, thanks, again)})
            == 3
        )
    assert digest_threads(db) == []


@pytest.mark.parametrize(
    "digest_id",
    [
        "digest.daily.20261399.abc@lists.test",  # no such day
        "digest.daily.٢٠٢٦١١٢٥.abc@lists.test",  # a day in Arabic-Indic digits
        "digest.weekly.２０２６１１１６.abc@lists.test",
    ],
)
def test_a_digest_id_that_names_no_day_is_an_ordinary_reference(
    db: sessionmaker[Session], make_list: MakeList, digest_id: str
) -> None:
    """A reply naming a digest that cannot have been sent is archived like any reply."""
    town(db, make_list)
    extra = f"In-Reply-To: <{digest_id}>\r\nReferences: <{digest_id}>\r\n"
    with transaction(db) as session:
        mlist = lists.require(session, "town")
        parsed = parse(mail("odd@x", "Re: things", "hi", extra))
        assert digests.period_of(parsed, mlist, "lists.test") is None
        assert ingest(session, parsed, mlist, domain="lists.test").status == STORED
