"""A digest the relay deferred, cancelled while its reader was suspended, after her resume.

Ann reads the daily digest. The relay defers today's; before it is tried again, bounces of her
earlier mail suspend her, so the retry cancels it (she gets no mail while suspended). Her
mailbox works again and she resumes the digest the same day: today's digest must come, with
the posts it held, once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists, subscriptions
from listgate.db import transaction
from listgate.models import DigestSent, OutboxEntry, Subscription
from listgate.states import BounceKind, DigestState, SubscriptionState
from tests.support.config import make_settings
from tests.support.factories import MakeList, make_mail, post
from tests.support.sink import SmtpSink
from worker import bounces
from worker.context import WorkerContext
from worker.digest import resend, send_digests

ANN = "ann@example.org"


def test_a_digest_cancelled_while_suspended_comes_once_after_the_resume(
    tmp_path: Path, db: sessionmaker[Session], make_list: MakeList, sink: SmtpSink
) -> None:
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_OUTBOUND=sink.url))
    make_list("dev")
    with transaction(db) as session:
        sub = subscriptions.start(session, lists.require(session, "dev"), ANN, kind="digest")
        sub.confirmed_at = datetime.now(UTC) - timedelta(days=5)
    post(db, make_mail("Plans", sender="bob@example.org", msgid="plans@x"))
    today = datetime.now(UTC).date()
    sink.script("451 4.3.0 try later")
    assert send_digests(ctx, today) == 0

    with transaction(db) as session:  # reports of her earlier mail reach the limit
        sub = session.scalars(select(Subscription).where(Subscription.address == ANN)).one()
        for _ in range(int(ctx.settings.bounce_score_limit)):
            bounces.score(session, ctx.settings, sub, BounceKind.PERMANENT)
        assert sub.status == SubscriptionState.SUSPENDED
        (retry,) = session.scalars(
            select(OutboxEntry.id).where(OutboxEntry.kind == dispatch.RESEND_DIGEST)
        )
    assert resend(ctx, retry) == 0
    with db() as session:
        assert session.scalar(select(DigestSent.status)) == DigestState.CANCELLED
    assert sink.received == []

    with transaction(db) as session:  # her confirmed NAME+subscribe@ (or Resume on the web)
        subscriptions.start(session, lists.require(session, "dev"), ANN, kind="digest")
    assert send_digests(ctx, today) == 1, (
        "today's digest, cancelled while Ann was suspended, must come after her resume"
    )
    (digest,) = sink.received
    assert digest.rcpt_tos == [ANN] and b"Message-ID: <plans@x>" in digest.data
    assert send_digests(ctx, today) == 0
    assert len(sink.received) == 1
