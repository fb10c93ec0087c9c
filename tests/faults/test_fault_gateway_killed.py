"""SIGKILL the gateway while 16 sending MTAs post: every 250 is in the archive, once (SQLite; and
PostgreSQL, where the writer decides most batches from its fact cache and appends them with the
check of gateway.factcache)."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from listgate.config import Settings
from tests.support.config import prepare, site_env, wait_until
from tests.support.gateway import archived_ids
from tests.support.processes import gateway
from tests.support.reliability import Mta, post, record, run_mtas, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]
CLIENTS = 16


def test_sigkill_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    settings = _killed_mid_stream(tmp_path)
    conn = sqlite3.connect(settings.database_url.split("///", 1)[1])
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        raws = conn.execute(
            "SELECT count(*) FROM messages m JOIN raw_messages r ON r.id = m.raw_id"
        ).fetchone()[0]
        assert raws == size(200, 2000), "every stored post keeps its raw bytes"
    finally:
        conn.close()


def test_sigkill_on_postgresql_loses_and_duplicates_nothing(
    tmp_path: Path, postgres_db: str
) -> None:
    _killed_mid_stream(tmp_path, LISTGATE_DATABASE_URL=postgres_db)


def _killed_mid_stream(tmp_path: Path, **extra: str) -> Settings:
    """The gateway killed (SIGKILL) while 16 MTAs post, each from its own sender: every post
    that got a 250 archived once, none lost; the site's settings."""
    total = size(200, 2000)
    kills = size(1, 3)
    env = site_env(
        tmp_path,
        LISTGATE_MAX_CONNECTIONS_PER_CLIENT="64",
        LISTGATE_MAX_MESSAGES_PER_MINUTE="100000",
        **extra,
    )
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    posts = [
        (
            f"kill{i}@example.org",
            post(
                f"kill{i}@example.org",
                subject=f"Post {i}",
                sender=f"mta{i % CLIENTS}@example.org",
                body=f"Body {i}\r\n",
            ),
        )
        for i in range(total)
    ]
    mtas = [Mta(settings.smtp_port, posts[k::CLIENTS]) for k in range(CLIENTS)]
    deadline = time.monotonic() + size(120, 900)
    threads = run_mtas(mtas, deadline)
    recovery: list[float] = []
    try:
        for k in range(kills):
            # kill at evenly spaced points of the stream, while every client is busy
            target = total * (k + 1) // (kills + 2)

            def reached(target: int = target) -> bool:
                return sum(len(m.accepted) for m in mtas) >= target

            wait_until(
                reached,
                timeout=120,
                what=f"{target} posts",
            )
            gw.kill()
            at_kill = sum(len(m.accepted) for m in mtas)
            assert at_kill < total, "the gateway must die while posts are still arriving"
            killed_at = time.monotonic()
            time.sleep(0.3)  # the clients see refused connections meanwhile and queue their posts
            gw.start()

            def accepting(at_kill: int = at_kill) -> bool:
                return sum(len(m.accepted) for m in mtas) > at_kill

            wait_until(
                accepting,
                what="posts accepted again",
            )
            recovery.append(time.monotonic() - killed_at)
        for t in threads:
            t.join(max(deadline - time.monotonic(), 1))
    finally:
        gw.stop()
    accepted = [msgid for m in mtas for msgid in m.accepted]
    assert [r for m in mtas for r in m.refused] == []
    assert len(accepted) == total, (
        f"only {len(accepted)} of {total} posts got a 250 before the deadline"
    )
    assert sum(m.errors for m in mtas) > 0, "the kill must have interrupted some clients"
    stored = Counter(archived_ids(db))
    lost = sorted(set(accepted) - set(stored))
    twice = sorted(msgid for msgid, n in stored.items() if n > 1)
    record(
        f"gateway SIGKILL x{kills}, {CLIENTS} clients",
        total,
        len(lost),
        len(twice),
        max(recovery),
    )
    assert lost == [] and twice == []
    assert set(stored) == set(accepted)
    return settings
