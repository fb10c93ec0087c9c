"""Mail that an administrator's command queues leaves at once, through a real worker.

No beat runs here, so no outbox sweeper: a mail arrives only if the command itself handed it to
the broker after its commit (the sweeper, every 15 s for entries older than 60 s, would take a
minute or more). With the broker down the command still succeeds, says so in one line, and the
sweeper sends the mail once the broker is back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from click.testing import CliRunner, Result
from sqlalchemy import select

from listgate import cli, dispatch, lists, notposted, subscriptions
from listgate.db import transaction
from listgate.models import OutboxEntry
from tests.support.config import wait_until
from tests.support.processes import WorkerProcess
from tests.support.services import RedisServer
from tests.support.sink import SmtpSink
from tests.support.worker import Site, mail, site_for, worker_site
from worker.celery_app import make_celery

pytestmark = pytest.mark.integration

PROMPTLY = 10.0  # seconds: shorter than the sweeper's first look at an entry (60 s)
SAM, KIM, LEE, PAT = "sam@example.org", "kim@example.org", "lee@example.org", "pat@example.org"
ANN = "ann@example.net"


@pytest.fixture
def site(tmp_path: Path, sink: SmtpSink) -> Iterator[Site]:
    """A migrated site and a real worker (no beat), sending to the sink."""
    yield from worker_site(tmp_path, sink.url)


def run(site: Site, *args: str) -> Result:
    """`listgate ARGS` as the administrator types it; it must succeed."""
    result = CliRunner().invoke(cli.main, list(args), env=site.env)
    assert result.exit_code == 0, result.output
    return result


def arrives(sink: SmtpSink, rcpt: str, subject: str) -> None:
    """A mail to rcpt whose Subject holds `subject` arrives within PROMPTLY seconds."""
    wait_until(
        lambda: any(
            r.rcpt_tos == [rcpt] and subject.lower() in str(r.message["Subject"]).lower()
            for r in sink.received
        ),
        timeout=PROMPTLY,
        what=f"{subject!r} to {rcpt} within {PROMPTLY:.0f} s",
    )


def awaiting(site: Site, *addresses: str) -> None:
    """Confirmed requests to join the members-only list dev, waiting for a moderator."""
    with transaction(site.db) as session:
        mlist = lists.require(session, "dev")
        for address in addresses:
            assert subscriptions.start(session, mlist, address).status == "awaiting"


def test_the_mail_of_each_command_leaves_at_once(site: Site, sink: SmtpSink) -> None:
    run(site, "lists", "create", "dev", "--policy", "members")
    for member in (SAM, ANN):  # Ann, the author, may post to the members-only list
        run(site, "subscribe", member, "--list", "dev")
    awaiting(site, KIM, LEE)

    out = run(site, "subscribe", PAT, "--list", "dev", "--invite").output
    assert PAT in out and "broker" not in out, out
    arrives(sink, PAT, "Confirm your subscription")

    assert "now subscribed" in run(site, "requests", "approve", KIM, "--list", "dev").output
    arrives(sink, KIM, "Welcome to dev")

    run(site, "requests", "refuse", LEE, "--list", "dev", "--reason", "Staff only.")
    arrives(sink, LEE, "was not approved")

    # An automatic reply is kept back; released by the administrator, it goes to the members.
    held = site.post(
        mail(ANN, "Out of office", "ooo@example.net", extra="Auto-Submitted: auto-replied")
    )
    assert not held.message_pk
    with site.db() as session:
        (entry,) = notposted.waiting(session, None, limit=10)
    run(site, "not-posted", "release", str(entry.id))
    arrives(sink, SAM, "Out of office")

    run(site, "unsubscribe", SAM, "--list", "dev", "--notify")
    arrives(sink, SAM, "You have left dev")

    with site.db() as session:
        left = session.scalars(select(OutboxEntry).where(OutboxEntry.done_at.is_(None))).all()
    assert not left, f"outbox entries not done: {[(e.kind, e.payload) for e in left]}"


@pytest.mark.redis
def test_with_the_broker_down_the_command_succeeds_and_the_sweeper_sends_later(
    tmp_path: Path, sink: SmtpSink, own_redis: RedisServer
) -> None:
    broker = f"redis://127.0.0.1:{own_redis.port}/0"
    site = site_for(tmp_path, sink.url, LISTGATE_BROKER_URL=broker)
    worker = WorkerProcess(site.env, tmp_path / "worker.log").start()
    try:
        run(site, "lists", "create", "dev", "--policy", "members")
        awaiting(site, KIM)
        own_redis.stop()
        # A real process: what the terminal shows, with no logging set up by a test runner.
        done = subprocess.run(
            [sys.executable, "-m", "listgate.cli", "requests", "approve", KIM, "--list", "dev"],
            env={**os.environ, **site.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{KIM} is now subscribed to dev.\n"
        note = done.stderr.splitlines()
        assert len(note) == 1 and note[0].startswith("note: the broker is not reachable"), note
        assert note[0].endswith("the mail goes out when it is back"), note
        own_redis.start()  # same port: the worker reconnects on its own
        producer = make_celery(site.settings)  # stands in for beat's periodic sweep
        wait_until(lambda: _sweep(producer), what="the broker to accept the sweep")
        arrives(sink, KIM, "Welcome to dev")
    finally:
        worker.stop()
        site.db.kw["bind"].dispose()


def _sweep(producer: Celery) -> bool:
    try:
        producer.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
        return True
    except Exception:  # noqa: BLE001 - the broker is still starting
        return False
