"""A real Celery worker delivers posts to an SMTP
sink: recipients, headers, retries, bounces, crashes.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import pytest

from listgate import dispatch, subscriptions
from listgate.db import transaction
from tests.support.config import search, wait_until
from tests.support.factories import stored_pk
from tests.support.processes import WorkerProcess
from tests.support.reliability import record
from tests.support.sink import SmtpSink
from tests.support.worker import build_site, mail
from worker import relay_sessions

pytestmark = pytest.mark.integration
VERP = re.compile(r"^dev\+bounce-[a-z0-9_.=-]{4,60}@lists\.test$")


@pytest.fixture(
    params=[
        "sqla",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres+redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
    ]
)
def stack(request: pytest.FixtureRequest) -> dict[str, str]:
    """The embedded default (SQLite + SQLAlchemy broker),
    Redis, and the production pair PostgreSQL + Redis.
    """
    if request.param == "sqla":
        return {}
    env = {"LISTGATE_BROKER_URL": request.getfixturevalue("redis_db_url")}
    if request.param.startswith("postgres"):
        env["LISTGATE_DATABASE_URL"] = request.getfixturevalue("postgres_db")
    return env


def test_recipients_and_headers(tmp_path: Path, sink: SmtpSink, stack: dict[str, str]) -> None:
    site = build_site(tmp_path, sink, **stack)
    site.subscribe(
        "dev",
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
        "mute@example.org",
        "author@example.org",
    )
    proc = WorkerProcess(site.env, tmp_path / "worker.log").start()
    try:
        first = site.post(mail("author@example.org", "Plans", "root@example.org"))
        assert first.thread_id is not None
        wait_until(lambda: len(sink.received) >= 4, what="the first post")
        assert sorted(r.rcpt_tos[0] for r in sink.received) == [
            "alice@example.org",
            "bob@example.org",
            "carol@example.org",
            "mute@example.org",
        ]
        with transaction(site.db) as session:
            from listgate import lists

            mlist = lists.require(session, "dev")
            subscriptions.change(
                session,
                mlist,
                "mute@example.org",
                subscriptions.MUTE,
                thread_id=first.thread_id,
                channel=subscriptions.WEB,
            )
            subscriptions.change(
                session,
                mlist,
                "follower@example.net",
                subscriptions.FOLLOW,
                thread_id=first.thread_id,
                channel=subscriptions.WEB,
            )
        reply = mail(
            "author@example.org",
            "Re: Plans",
            "reply@example.org",
            "Second thoughts.\n",
            cc="carol@example.org",
            in_reply_to="root@example.org",
        )
        second = site.post(reply)
        wait_until(lambda: len(sink.received) >= 7, what="the reply")
        got = sorted(r.rcpt_tos[0] for r in sink.received[4:])
        # list subscribers + the follower, minus the muter, the author and the Cc'd subscriber
        assert got == ["alice@example.org", "bob@example.org", "follower@example.net"]
        # The sink holds the copy a moment before the worker records "sent": wait for the record.
        wait_until(
            lambda: set(site.deliveries(stored_pk(second)).values()) == {"sent"},
            what="every row sent",
        )
    finally:
        proc.stop()
    copy = next(r for r in sink.received[4:] if r.rcpt_tos == ["alice@example.org"])
    assert copy.data.endswith(reply), "the original bytes must be intact below the list headers"
    assert VERP.match(copy.mail_from)
    msg = copy.message
    assert msg["List-Id"] == '"Developers" <dev.lists.test>'
    assert msg["List-Post"] == "<mailto:dev@lists.test>"
    assert msg["List-Archive"] == "<https://lists.test/lists/dev/>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<mailto:dev+unsubscribe@lists.test>" in msg["List-Unsubscribe"]
    assert re.search(r"<https://lists\.test/unsubscribe/[^>]+>", msg["List-Unsubscribe"])
    assert msg["Archived-At"] == "<https://lists.test/m/reply%40example.org>"
    assert msg["Precedence"] == "list"
    assert msg["Reply-To"] is None  # the default Reply-To policy is none: replies go to the author
    assert msg["X-Listgate-Loop"] == "lists.test"
    assert (msg["Message-ID"], msg["In-Reply-To"], msg["References"]) == (
        "<reply@example.org>",
        "<root@example.org>",
        "<root@example.org>",
    )
    follower = message_from_bytes(
        next(r for r in sink.received if r.rcpt_tos == ["follower@example.net"]).data
    )
    token = search(r"/unsubscribe/([^>]+)>", follower["List-Unsubscribe"])
    with site.db() as session:
        assert (
            subscriptions.read_unsubscribe(session, site.settings.secret_key, token)[2]
            == first.thread_id
        )


@pytest.mark.long(29)
def test_sigkill_mid_fanout_then_restart_loses_no_copy(
    tmp_path: Path, sink: SmtpSink, stack: dict[str, str], request: pytest.FixtureRequest
) -> None:
    site = build_site(tmp_path, sink, **stack)
    addresses = [f"reader{i:04d}@example.org" for i in range(2000)]
    site.subscribe("dev", *addresses)
    proc = WorkerProcess(site.env, tmp_path / "worker.log")
    try:
        proc.start()
        post = site.post(mail("author@example.org", "Big news", "big@example.org"))
        wait_until(lambda: len(sink.received) >= 300, what="the fan-out to get going")
        # A crash comes at any moment, not just as the sink takes a copy (killing on that event
        # aimed the kill at the instant between a wave's dots and its COMMIT).
        time.sleep(random.uniform(0.0, 0.2))
        proc.kill()
        at_kill = len(sink.received)
        assert at_kill < 2000, "the worker must die in the middle of the fan-out"
        proc.start()
        site.app.send_task(dispatch.RETRY_DEFERRED, kwargs={"stale_after": 0})
        wait_until(lambda: len(sink.received) >= 2000, timeout=120, what="the rest of the fan-out")
        wait_until(
            lambda: set(site.deliveries(stored_pk(post)).values()) == {"sent"},
            what="every row sent",
        )
    finally:
        proc.stop()
    got = Counter(r.rcpt_tos[0] for r in sink.received)
    # Never lost: every recipient has a copy, and every row says so.
    assert sorted(got) == addresses
    # And at most the waves in flight twice: the record of a wave is committed right after its
    # dots, in a COMMIT that waits for no disk flush (docs/worker.md, "Exactly once"). SMTP has no
    # atomic "the relay took it and we recorded it": a kill after a wave's dots and before its
    # COMMIT returned sends that wave again (never loses it). Such a kill is rare (the window is
    # the dots' writes and one COMMIT); more than one wave per worker process twice is a defect.
    twice = sorted(address for address, n in got.items() if n > 1)
    record(
        f"worker SIGKILL mid fan-out of 2,000 ({request.node.callspec.id})",
        2000,
        0,
        len(twice),
        note=(
            f"killed after {at_kill} copies; "
            "a second copy only for a wave caught between its dots and COMMIT"
        ),
    )
    assert max(got.values()) <= 2, "a recipient got three copies"
    assert len(twice) <= relay_sessions.SIZE * proc.concurrency, (
        f"{len(twice)} recipients got two copies (killed after {at_kill} copies)"
    )
