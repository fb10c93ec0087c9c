"""The spool and its archiver: what a 250 promised becomes a post, or a row that says why not, never nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from gateway.handler import GatewayHandler
from listgate import counters, status
from listgate.db import transaction
from listgate.models import Ban, Message, SpooledMail
from listgate.models.spool import FAILED, NOT_POSTED
from listgate.archiver import Archiver
from listgate.spool import Spool


def _raw(msgid: str, sender: str = "ann@example.org", body: str = "Hello\r\n", extra: str = "") -> bytes:
    return f"From: {sender}\r\nSubject: hi\r\nMessage-ID: <{msgid}>\r\n{extra}\r\n{body}".encode()


@pytest.fixture
def gate(settings, db, make_list):  # type: ignore[no-untyped-def]
    mlist = make_list("dev")
    sent: list = []
    handler = GatewayHandler(settings, db)
    return handler, Archiver(settings, db, enqueue=sent.extend), mlist, sent


def _rows(db) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    with db() as s:
        return [(r.message_id, r.state, r.reason) for r in s.scalars(select(SpooledMail).order_by(SpooledMail.id))]


def test_a_ban_added_after_the_250_leaves_the_post_not_posted_with_its_reason(gate, db) -> None:  # type: ignore[no-untyped-def]
    handler, archiver, mlist, sent = gate
    assert handler.deliver(_raw("late@x"), "ann@example.org", ["dev@lists.test"])[1][0].reply.endswith("stored")
    with transaction(db) as s:
        s.add(Ban(list_id=mlist.id, address="ann@example.org"))
    assert archiver.drain() == 1
    assert _rows(db) == [("late@x", NOT_POSTED, "dev: ann@example.org is banned from posting to this list")]
    with db() as s:
        assert s.scalars(select(Message)).all() == [] and counters.values(s, counters.REFUSED) == {"banned": 1}
        spool = Spool(db.kw["bind"])
        assert spool.depth(s).not_posted == 1 and spool.depth(s).pending == 0
        spool.close()
    assert sent == []


def test_a_ban_known_at_data_is_refused_in_the_dialogue_also_when_hidden_in_sender(gate, db) -> None:  # type: ignore[no-untyped-def]
    handler, archiver, mlist, _ = gate
    with transaction(db) as s:
        s.add(Ban(list_id=mlist.id, address="spam@example.net"))
    for raw, envelope in ((_raw("b1@x", "spam@example.net"), "x@example.org"),
                          (_raw("b2@x", extra="Sender: spam@example.net\r\n"), "x@example.org"),
                          (_raw("b3@x"), "spam@example.net")):
        reply = handler.deliver(raw, envelope, ["dev@lists.test"])[1][0].reply
        assert reply.startswith("550 5.7.1") and "banned" in reply
    assert _rows(db) == []  # nothing spooled


def test_a_reply_command_naming_no_thread_is_not_posted_never_silent(gate, db) -> None:  # type: ignore[no-untyped-def]
    handler, archiver, _, _ = gate
    raw = _raw("cmd@x", body="follow\r\n", extra="In-Reply-To: <nowhere@x>\r\n")
    assert handler.deliver(raw, "ann@example.org", ["dev@lists.test"])[1][0].reply.endswith("stored")
    archiver.drain()
    assert _rows(db) == [("cmd@x", NOT_POSTED, "dev: 'follow' names no thread we know")]


def test_a_message_that_fails_alone_is_kept_as_failed_and_the_batch_goes_on(gate, db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from listgate import threads

    handler, archiver, _, sent = gate
    real = threads.attach

    def attach(session, msg, *a, **k):  # type: ignore[no-untyped-def]
        if msg.values["message_id"] == "bad@x":
            raise ValueError("a bug this message triggers")
        return real(session, msg, *a, **k)

    monkeypatch.setattr(threads, "attach", attach)
    for msgid in ("ok1@x", "bad@x", "ok2@x"):
        handler.deliver(_raw(msgid), "ann@example.org", ["dev@lists.test"])
    assert archiver.archive_once() == 3
    assert _rows(db) == [("bad@x", FAILED, "ValueError: a bug this message triggers")]
    with db() as s:
        assert sorted(s.scalars(select(Message.message_id))) == ["ok1@x", "ok2@x"]
    assert len(sent) == 2


def test_status_shows_the_spool_depth_and_the_age_of_the_oldest(gate, db) -> None:  # type: ignore[no-untyped-def]
    handler, _, _, _ = gate
    handler.deliver(_raw("w1@x"), "ann@example.org", ["dev@lists.test"])
    handler.deliver(_raw("w2@x"), "ann@example.org", ["dev@lists.test"])
    with db() as s:
        metrics = status.gather_metrics(s, now=datetime.now(timezone.utc) + timedelta(seconds=90))
    assert metrics.spool.pending == 2 and 89 < metrics.spool.oldest_seconds < 120
    lines = status.render(status.Status("db", True, "x", "x", "broker", True, {}, metrics))
    assert any(line.startswith("spool      2 waiting for the archiver, oldest") for line in lines), lines
    assert _rows(db) == []  # the archive keeps only rows not posted; pending mail is in the spool file
