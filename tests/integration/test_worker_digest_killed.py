"""A worker killed (SIGKILL) while it sends the digests: after a restart every reader has the
day's digest exactly once.

The relay holds the third reader's digest at the moment of the kill: before the message (at
RCPT: the relay never took it, so it must be sent again) or after the final dot (the relay has
it: it must not be sent a second time). The beat's jobs then run as after any restart: the
recovery of what a dead worker held (every minute), and the digests' run catching up.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest

from listgate import dispatch
from listgate.models import DigestSent, OutboxEntry
from listgate.states import DigestState
from tests.support.config import wait_until
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink, enclosed
from tests.support.worker import build_site, mail

pytestmark = pytest.mark.integration

READERS = [f"reader{i}@example.org" for i in range(5)]
HELD = READERS[2]


@pytest.fixture(
    params=[
        "sqla",
        pytest.param("postgres+redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
    ]
)
def stack(request: pytest.FixtureRequest) -> dict[str, str]:
    """The embedded default (SQLite + SQLAlchemy broker) and the production pair."""
    if request.param == "sqla":
        return {}
    return {
        "LISTGATE_BROKER_URL": request.getfixturevalue("redis_db_url"),
        "LISTGATE_DATABASE_URL": request.getfixturevalue("postgres_db"),
    }


@pytest.mark.parametrize("at", ["RCPT", "DATA"])
def test_a_worker_killed_mid_digest_loses_none_and_sends_none_twice(
    tmp_path: Path, sink: SmtpSink, stack: dict[str, str], at: str
) -> None:
    site = build_site(tmp_path, sink, **stack)
    site.subscribe("dev", *READERS, kind="digest")
    site.post(mail("ann@example.org", "Release plan", "plan@example.org"))
    today = datetime.now(UTC).date().isoformat()
    held = sink.stall(HELD, at)
    proc = WorkerProcess(site.env, tmp_path / "worker.log")
    try:
        proc.start()
        site.app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": today})
        wait_until(held.reached.is_set, what=f"{HELD}'s digest held by the relay at {at}")
        proc.kill()
        held.released.set()
        proc.start()
        # The beat's recovery of what a dead worker held (stale at once here), and the run.
        site.app.send_task(dispatch.RETRY_DEFERRED, kwargs={"stale_after": 0})
        site.app.send_task(dispatch.SEND_DIGESTS, kwargs={"day": today})
        wait_until(lambda: all(sink.to(reader) for reader in READERS), what="every reader's digest")
        wait_until(
            lambda: site.count(DigestSent, DigestSent.status == DigestState.SENT) == len(READERS),
            what="every reader's digest recorded as sent",
        )
        wait_until(
            lambda: site.count(OutboxEntry, OutboxEntry.done_at.is_(None)) == 0,
            what="no resend left waiting",
        )
    finally:
        proc.stop()
    got = Counter(r.rcpt_tos[0] for r in sink.received)
    assert got == dict.fromkeys(READERS, 1), f"digests per reader after the kill at {at}"
    for copy in sink.to(HELD):
        parts = copy.message.get_payload()
        assert isinstance(parts, list)
        assert [enclosed(p)["Message-ID"] for p in parts[1:] if isinstance(p, Message)] == [
            "<plan@example.org>"
        ]
