"""A digest the relay defers (451) is sent again with
the sweeper's backoff, not a day later, and only once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import select

from listgate import dispatch
from listgate.models import DigestSent, OutboxEntry
from tests.support.config import wait_until
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink, enclosed
from tests.support.worker import build_site, mail

pytestmark = pytest.mark.integration


def test_digest_deferred_by_451_is_retried_and_arrives_once(tmp_path: Path, sink: SmtpSink) -> None:
    site = build_site(tmp_path, sink)
    site.subscribe("dev", "digest@example.org", kind="digest")
    site.post(mail("a@example.org", "Morning topic", "dg1@example.org"))
    site.post(mail("b@example.org", "Evening topic", "dg2@example.org"))
    today = datetime.now(UTC).date().isoformat()
    sink.script("451 4.3.0 try later")
    proc = WorkerProcess(site.env, tmp_path / "worker.log").start()
    try:
        site.app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": today})
        wait_until(
            lambda: site.count(DigestSent, DigestSent.status == "deferred") == 1,
            what="the deferral",
        )
        assert site.count(OutboxEntry, OutboxEntry.kind == dispatch.RESEND_DIGEST) == 1
        assert sink.to("digest@example.org") == []
        # The beat's sweeper (every 15 s, backoff per entry) picks the retry up; here we run it now.
        site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
        got = wait_until(lambda: sink.to("digest@example.org"), what="the retried digest")
        wait_until(
            lambda: site.count(DigestSent, DigestSent.status == "sent") == 1,
            what="the record of it",
        )
        # More sweeps and the daily job again (beat catching up): still one copy.
        site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
        site.app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": today})
        site.app.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
        wait_until(
            lambda: site.count(OutboxEntry, OutboxEntry.done_at.is_(None)) == 0,
            what="the outbox drained",
        )
    finally:
        proc.stop()
    assert len(sink.to("digest@example.org")) == 1
    digest = got[0].message
    assert digest.get_content_type() == "multipart/digest"
    parts = digest.get_payload()
    assert isinstance(parts, list)  # a multipart's payload: its parts, each a Message
    posts = [p for p in parts if isinstance(p, Message)][1:]
    assert sorted(enclosed(p)["Message-ID"] for p in posts) == [
        "<dg1@example.org>",
        "<dg2@example.org>",
    ]
    with site.db() as session:
        assert session.scalar(select(DigestSent.last_error)) == ""
