"""A copy never sent is not a post had: the digest brings it.

Ann gets every post; the relay defers her copy of a post; before it is tried again she changes
to the daily digest, so the copy is cancelled (no longer subscribed to every post). The post
came while she was on every post, but she never got it: the day's digest must hold it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists, subscriptions
from listgate.db import transaction
from listgate.models import Delivery, OutboxEntry
from listgate.states import DeliveryState
from tests.support.config import make_settings
from tests.support.factories import MakeList, make_mail, post
from tests.support.sink import SmtpSink
from tests.unit.worker.test_bounces import dsn
from worker import bounces
from worker.context import WorkerContext
from worker.delivery import MAX_ATTEMPTS, fanout, retry_due
from worker.digest import send_digests

ANN = "ann@example.org"


def test_a_copy_cancelled_by_a_switch_to_the_digest_comes_in_the_digest(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    ctx = _deferred_then_digest(tmp_path, db, make_list, sink)
    assert retry_due(ctx, horizon=86400) == 0
    with db() as session:
        assert session.scalar(select(Delivery.status)) is DeliveryState.CANCELLED
    assert sink.received == []

    assert send_digests(ctx, datetime.now(UTC).date()) == 1, (
        "the post whose copy was cancelled must come in Ann's digest"
    )
    (digest,) = sink.received
    assert digest.rcpt_tos == [ANN] and b"Message-ID: <plans@x>" in digest.data


def _deferred(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink, times: int = 1
) -> WorkerContext:
    """Ann is on every post of dev; the relay defers her copy (its first `times` tries)."""
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_OUTBOUND=sink.url))
    make_list("dev")
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), ANN)
        sub.confirmed_at = datetime.now(UTC) - timedelta(days=5)
    result = post(db, make_mail("Plans", sender="bob@example.org", msgid="plans@x"))
    assert result.message_pk is not None
    (entry,) = [e for e in result.outbox if e.kind == dispatch.FANOUT]
    for _ in range(times):
        sink.script("451 4.3.0 try later")
    assert fanout(ctx, entry.id, result.message_pk) == 0
    return ctx


def _to_the_digest(db: sessionmaker[Session]) -> None:
    """Ann changes to the daily digest on the web."""
    with transaction(db) as session:
        subscriptions.change(
            session, lists.require(session, "dev"), ANN, subscriptions.DIGEST, channel="web"
        )


def _deferred_then_digest(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> WorkerContext:
    """Ann's copy of a post is deferred by the relay; she changes to the daily digest."""
    ctx = _deferred(tmp_path, db, make_list, sink)
    _to_the_digest(db)
    return ctx


def test_a_copy_still_deferred_when_the_digest_runs_comes_in_the_digest_once(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    """The digest runs while the relay still holds the copy back: the digest brings the post
    (the copy, to an address no longer on every post, would be cancelled when tried again) and
    the copy is not sent afterwards."""
    ctx = _deferred_then_digest(tmp_path, db, make_list, sink)
    assert send_digests(ctx, datetime.now(UTC).date()) == 1, (
        "the post whose copy was still deferred must come in Ann's digest"
    )
    assert retry_due(ctx, horizon=86400) == 0
    (digest,) = sink.received
    assert digest.rcpt_tos == [ANN] and b"Message-ID: <plans@x>" in digest.data
    with db() as session:
        assert session.scalar(select(Delivery.status)) is DeliveryState.CANCELLED


def test_a_copy_given_up_comes_in_the_digest(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    """The relay deferred the copy until it was given up: Ann never had the post; her digest of
    the day brings it."""
    ctx = _deferred(tmp_path, db, make_list, sink, times=MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS):
        assert retry_due(ctx, horizon=10**7) == 0
    with db() as session:
        assert session.scalar(select(Delivery.status)) is DeliveryState.FAILED
    assert sink.received == []
    _to_the_digest(db)
    assert send_digests(ctx, datetime.now(UTC).date()) == 1, (
        "the post whose copy was given up must come in Ann's digest"
    )
    (digest,) = sink.received
    assert digest.rcpt_tos == [ANN] and b"Message-ID: <plans@x>" in digest.data


def _delivered_then_reported(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink, named: str
) -> WorkerContext:
    """Ann's copy goes out; a DSN naming `named` comes back to its VERP address; she changes to
    the daily digest."""
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_OUTBOUND=sink.url))
    make_list("dev")
    with transaction(db) as session:
        sub = lists.subscribe(session, lists.require(session, "dev"), ANN)
        sub.confirmed_at = datetime.now(UTC) - timedelta(days=5)
    result = post(db, make_mail("Plans", sender="bob@example.org", msgid="plans@x"))
    assert result.message_pk is not None
    (entry,) = [e for e in result.outbox if e.kind == dispatch.FANOUT]
    assert fanout(ctx, entry.id, result.message_pk) == 1
    (copy,) = sink.received
    token = copy.mail_from.strip("<>").split("+bounce-", 1)[1].split("@")[0]
    with transaction(db) as session:
        report = dsn(named, "5.1.1", f"550 5.1.1 <{named}>: User unknown")
        bounces.handle(
            session, ctx.settings, OutboxEntry(payload=json.dumps({"arg": token})), report
        )
    with sink.handler.lock:
        sink.handler.received.clear()
    _to_the_digest(db)
    return ctx


def test_a_copy_reported_failed_for_the_reader_comes_in_the_digest(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    ctx = _delivered_then_reported(tmp_path, db, make_list, sink, ANN)
    assert send_digests(ctx, datetime.now(UTC).date()) == 1, (
        "her mailbox refused the copy after it went out: the digest must bring the post"
    )
    (digest,) = sink.received
    assert digest.rcpt_tos == [ANN] and b"Message-ID: <plans@x>" in digest.data


def test_a_copy_reported_failed_for_a_forwarding_address_is_had(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    """The report names another address (Ann's mailbox forwards to it): Ann had the copy, the
    digest does not bring it again."""
    ctx = _delivered_then_reported(tmp_path, db, make_list, sink, "ann-old@example.net")
    assert send_digests(ctx, datetime.now(UTC).date()) == 0
    assert sink.received == []
