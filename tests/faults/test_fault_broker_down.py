"""Redis (the broker) goes away while posts arrive:
posts still get 250; notifications follow its return.
"""

from __future__ import annotations

import smtplib
import time
from collections import Counter
from pathlib import Path

import pytest
from celery import Celery

from listgate import dispatch, lists
from listgate.db import transaction
from tests.support.config import prepare, site_env, wait_until
from tests.support.processes import WorkerProcess, gateway
from tests.support.reliability import post, record, size
from tests.support.services import RedisServer
from tests.support.sink import SmtpSink
from worker.celery_app import make_celery

pytestmark = [pytest.mark.integration, pytest.mark.soak, pytest.mark.redis]


def test_posts_accepted_while_broker_down_and_notified_after(
    tmp_path: Path, sink: SmtpSink, own_redis: RedisServer
) -> None:
    down_for = size(3, 30)  # seconds without a broker
    env = site_env(
        tmp_path,
        LISTGATE_BROKER_URL=f"redis://127.0.0.1:{own_redis.port}/0",
        LISTGATE_OUTBOUND=sink.url,
    )
    settings, db = prepare(env, "dev")
    with transaction(db) as session:
        lists.subscribe(session, lists.require(session, "dev"), "alice@example.org")
    gw = gateway(env, tmp_path / "gateway.log")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:  # both stopped whichever failed to start
        gw.start()
        worker.start()
        with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=30) as c:
            assert (
                c.sendmail("ann@example.org", ["dev@lists.test"], post("before@example.org")) == {}
            )
        wait_until(lambda: len(sink.received) == 1, what="the post before the outage")

        own_redis.stop()
        sent_down: list[str] = []
        ends = time.monotonic() + down_for
        while time.monotonic() < ends or len(sent_down) < 3:
            msgid = f"down{len(sent_down)}@example.org"
            with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=30) as c:
                # a 250 for every post: the broker is not needed to keep mail safe
                assert c.sendmail("ann@example.org", ["dev@lists.test"], post(msgid)) == {}
            sent_down.append(msgid)
            time.sleep(0.2)
        assert len(sink.received) == 1, "nothing can go out without the broker"
        # the gateway hands entries to the broker after the 250, from a background thread
        wait_until(
            lambda: "left for the sweeper" in gw.text(),
            what="the gateway noticing the broker is down",
        )

        own_redis.start()  # same port: the gateway and the worker reconnect on their own
        back = time.monotonic()
        producer = make_celery(settings)  # stands in for beat's periodic sweep
        wait_until(lambda: _sweep(producer), what="the broker to accept the sweep")
        wait_until(
            lambda: len(sink.received) >= 1 + len(sent_down),
            timeout=90,
            what="the delayed notifications",
        )
        recovery = time.monotonic() - back
        with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=30) as c:
            assert (
                c.sendmail("ann@example.org", ["dev@lists.test"], post("after@example.org")) == {}
            )
        wait_until(lambda: len(sink.received) >= 2 + len(sent_down), what="a post after recovery")
        time.sleep(1)  # anything sent twice would have arrived by now
    finally:
        worker.stop()
        gw.stop()
    got = Counter(
        r.message["Message-ID"].strip("<>")
        for r in sink.received
        if r.rcpt_tos == ["alice@example.org"]
    )
    expected = {"before@example.org", "after@example.org", *sent_down}
    lost, twice = expected - set(got), [m for m, n in got.items() if n > 1]
    record(f"broker (Redis) down {down_for}s", len(sent_down), len(lost), len(twice), recovery)
    assert not lost and not twice and set(got) == expected


def _sweep(producer: Celery) -> bool:
    try:
        producer.send_task(dispatch.SWEEP_OUTBOX, kwargs={"older_than": 0})
        return True
    except Exception:  # noqa: BLE001 - the broker is still starting
        return False
