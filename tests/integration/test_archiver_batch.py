"""One archiving batch of varied live mail, on SQLite and PostgreSQL: every message's outcome is
what it would be alone, and the batch is archived as one (a failure inside it would be redone one
message at a time, which hides a broken batch statement behind the right answers).

The batch's rows that only add (follows, outbox entries, thread nodes, reference rows) go out
together at its end (listgate.places); the senders' bans are read once per list.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from listgate import dispatch, notposted, removal
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Ban, Message, OutboxEntry, Person, RawMessage, Subscription
from listgate.states import SubscriptionKind, SubscriptionState
from tests.support.batches import site_with_dev
from tests.support.gateway import through_hooks


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest) -> tuple[Settings, sessionmaker[Session]]:
    """(settings, writing session factory) of a fresh archive with the open list dev."""
    return site_with_dev(request)


def _post(
    handler: GatewayHandler,
    msgid: str,
    sender: str,
    reply_to: str = "",
    extra: str = "",
    body: str = "",
) -> None:
    key = f"<{reply_to}.batch@example.org>"
    refs = f"In-Reply-To: {key}\r\nReferences: {key}\r\n" if reply_to else ""
    text = body or f"Text of {msgid}."
    raw = (
        f"From: {sender}\r\nSubject: {'Re: ' if reply_to else ''}topic {msgid}\r\n"
        f"Message-ID: <{msgid}.batch@example.org>\r\n{refs}{extra}\r\n{text}\r\n"
    ).encode()
    assert "250" in through_hooks(handler, raw, sender, ["dev@lists.test"])


def _follows(db: sessionmaker[Session]) -> dict[tuple[str, int], tuple[int, str, str]]:
    """(address, thread) -> (row id, kind, status) of every thread follow and mute."""
    with db() as s:
        return {
            (r.address, r.thread_key): (r.id, r.kind, r.status)
            for r in s.scalars(
                select(Subscription).where(
                    Subscription.kind.in_((SubscriptionKind.THREAD, SubscriptionKind.MUTE))
                )
            )
        }


def _thread(db: sessionmaker[Session], msgid: str) -> int:
    with db() as s:
        return s.scalars(
            select(Message.thread_id).where(Message.message_id == f"{msgid}.batch@example.org")
        ).one()


def test_a_batch_of_varied_mail_is_archived_as_one_with_each_outcome_its_own(
    site: tuple[Settings, sessionmaker[Session]], caplog: pytest.LogCaptureFixture
) -> None:
    settings, db = site
    handler = GatewayHandler(settings, db)
    sent: list[OutboxEntry] = []
    archiver = Archiver(settings, db, enqueue=sent.extend, batch=50)
    _post(handler, "a", "ann@example.org")
    _post(handler, "b", "bob@example.org")
    _post(handler, "t", "tom@example.org")
    assert archiver.drain() == 3
    a, b, t = _thread(db, "a"), _thread(db, "b"), _thread(db, "t")
    before = _follows(db)
    assert set(before) == {("ann@example.org", a), ("bob@example.org", b), ("tom@example.org", t)}
    with transaction(db) as s:  # the state the second batch meets
        s.add(Person(address="carol@example.org", auto_follow=False))
        s.add(
            Subscription(
                list_id=1,
                address="dave@example.org",
                kind=SubscriptionKind.MUTE,
                thread_key=a,
                status=SubscriptionState.ACTIVE,
            )
        )
        ann = s.get_one(Subscription, before[("ann@example.org", a)][0])
        ann.status, ann.end_reason = SubscriptionState.ENDED, "unsubscribed"
    sent.clear()

    _post(handler, "a1", "ann@example.org", "a")  # her ended follow comes back
    _post(handler, "a2", "carol@example.org", "a")  # turned following off
    _post(handler, "a3", "dave@example.org", "a")  # muted the thread
    _post(handler, "a4", "bob@example.org", "a")  # follows a thread new to him
    _post(handler, "b1", "bob@example.org", "b")  # twice in his own thread: one follow
    _post(handler, "b2", "bob@example.org", "b1")
    _post(handler, "f", "frank@example.org")  # a new thread
    _post(handler, "e", "erin@example.org", "a")  # banned after the 250 (below)
    _post(handler, "g", "gina@example.org", "a", "Auto-Submitted: auto-replied\r\n")
    _post(handler, "h", "hank@example.org", "b", body="follow")  # a thread command: no post
    _post(handler, "t", "tom@example.org", body="Other bytes.")  # taken down after the 250
    with transaction(db) as s:
        s.add(Ban(list_id=1, address="erin@example.org"))
        removal.remove(s, removal.find(s, "t.batch@example.org"), "spam", "mod@example.org")
        kept_before = s.execute(select(func.count()).select_from(RawMessage)).scalar_one()
    with caplog.at_level(logging.INFO, logger="listgate"):
        assert archiver.drain() == 11
    assert not [r for r in caplog.records if "one message at a time" in r.getMessage()]
    with db() as s:  # the bytes of the 7 posts and the 2 not posted; none of the command's or
        # of the takedown's Message-ID
        assert s.scalar(select(func.count()).select_from(RawMessage)) == kept_before + 9

    f = _thread(db, "f")
    after = _follows(db)
    active, ended = SubscriptionState.ACTIVE, SubscriptionState.ENDED
    assert {k: v[1:] for k, v in after.items()} == {
        ("ann@example.org", a): (SubscriptionKind.THREAD, active),
        ("bob@example.org", a): (SubscriptionKind.THREAD, active),
        ("bob@example.org", b): (SubscriptionKind.THREAD, active),
        ("dave@example.org", a): (SubscriptionKind.MUTE, active),
        ("frank@example.org", f): (SubscriptionKind.THREAD, active),
        ("tom@example.org", t): (SubscriptionKind.THREAD, active),
    }
    assert after[("ann@example.org", a)][0] == before[("ann@example.org", a)][0]  # the same row
    assert ended not in {v[2] for v in after.values()}
    with db() as s:
        waiting = {n.message_id: n.reason for n in notposted.waiting(s)}
        posts = {r.id: r.message_id for r in s.execute(select(Message.id, Message.message_id))}
        rows = {e.id: (e.kind, e.ref_id) for e in s.scalars(select(OutboxEntry))}
    assert waiting["e.batch@example.org"] == "erin@example.org is banned from posting to this list"
    assert (
        "auto-replied" in waiting["g.batch@example.org"]
        or "automatic" in waiting["g.batch@example.org"]
    )
    # every post of the batch handed on once, under the id its outbox row has
    fanouts = {e.id: e.ref_id for e in sent if e.kind == dispatch.FANOUT}
    assert len(fanouts) == len([e for e in sent if e.kind == dispatch.FANOUT])
    assert sorted(posts[pk].split(".")[0] for pk in fanouts.values()) == [
        "a1",
        "a2",
        "a3",
        "a4",
        "b1",
        "b2",
        "f",
    ]
    assert all(rows[i] == (dispatch.FANOUT, pk) for i, pk in fanouts.items())
    assert len({e.id for e in sent}) == len(sent) and all(e.id in rows for e in sent)
