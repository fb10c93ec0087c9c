"""SIGKILL the archiver process in the middle of its batches: every spooled post is archived exactly
once.

The gateway only spools (--no-archiver); a separate archiver takes batches of 50. Killed while
a batch's transaction is open, it leaves that batch spooled (the transaction never committed)
and the next archiver takes it again: no post lost, none archived or fanned out twice.
"""

from __future__ import annotations

import random
import smtplib
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate.models import Message, OutboxEntry, Thread
from listgate.spool import Spool
from tests.support.config import prepare, site_env, wait_until
from tests.support.gateway import message_count
from tests.support.processes import archiver, gateway
from tests.support.reliability import post, record, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]


def test_sigkill_of_the_archiver_mid_batch_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    total, kills = size(600, 3000), size(2, 5)
    env = site_env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="100000")
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log")
    gw.args = ["--no-archiver"]
    gw.start()
    ids = [f"k{i}@example.org" for i in range(total)]
    try:
        with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=30) as c:
            for i, msgid in enumerate(ids):  # one long thread: each post answers the one before
                raw = post(msgid, subject="Re: plan" if i else "plan", body=f"Post {i}\r\n")
                if i:
                    raw = raw.replace(
                        b"\r\n\r\n", f"\r\nIn-Reply-To: <{ids[i - 1]}>\r\n\r\n".encode(), 1
                    )
                c.sendmail("ann@example.org", ["dev@lists.test"], raw)  # raises unless 250
    finally:
        gw.stop()
    assert message_count(db) == 0, "the gateway alone archives nothing"
    arch = archiver(env, tmp_path / "archiver.log")
    started = time.monotonic()
    killed_at: list[int] = []
    for k in range(kills):
        arch.start()
        target = total * (k + 1) // (kills + 1)

        def archived(target: int = target) -> bool:
            return message_count(db) >= target

        wait_until(
            archived,
            timeout=120,
            what=f"{target} archived",
        )
        time.sleep(random.uniform(0.0, 0.1))  # a batch of 50 takes longer: SIGKILL lands inside one
        arch.kill()
        killed_at.append(message_count(db))
    arch.start()
    try:
        wait_until(lambda: _pending(db) == 0, timeout=180, what="the spool emptied")
    finally:
        arch.stop()
    with db() as s:
        stored = Counter(s.scalars(select(Message.message_id)))
        fanouts = Counter(
            s.scalars(select(OutboxEntry.ref_id).where(OutboxEntry.kind == "listgate.fanout"))
        )
        thread_counts = list(s.scalars(select(Thread.message_count)))
    lost, twice = sorted(set(ids) - set(stored)), sorted(m for m, n in stored.items() if n > 1)
    record(
        f"archiver SIGKILL x{kills} mid-batch",
        total,
        len(lost),
        len(twice),
        time.monotonic() - started,
        note=f"killed with {killed_at} archived",
    )
    assert all(0 < n < total for n in killed_at), f"each kill must land mid-stream: {killed_at}"
    assert lost == [] and twice == []
    assert len(fanouts) == total and set(fanouts.values()) == {1}, "one fan-out per post"
    assert thread_counts == [total], "the thread's count agrees with its rows"


def _pending(db: sessionmaker[Session]) -> int:
    spool = Spool(db.kw["bind"])
    try:
        with db() as s:
            return spool.depth(s).pending
    finally:
        spool.close()
