"""Many SMTP clients posting into one list at once: nothing lost, one correct tree."""

from __future__ import annotations

import random
import smtplib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from listgate import lists
from listgate.models import Message, Thread
from tests.support.gateway import Env, dev_gateway, mail

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A gateway with the list dev@, serving 64 connections from one client."""
    yield from dev_gateway(tmp_path, LISTGATE_MAX_CONNECTIONS_PER_CLIENT="64")


def test_parallel_clients_posting_replies_in_any_order_build_one_tree(env: Env) -> None:
    rng = random.Random(7)
    n = 60
    parent = [None] + [rng.randrange(i) for i in range(1, n)]

    def chain(i: int) -> list[str]:
        out: list[str] = []
        p = parent[i]
        while p is not None:
            out.insert(0, f"<t{p}@x>")
            p = parent[p]
        return out

    posts = [
        mail(
            subject="Re: Big thread" if i else "Big thread",
            msgid=f"t{i}@x",
            frm=f"u{i % 7}@example.org",
            extra=(
                f"References: {' '.join(chain(i))}\r\nIn-Reply-To: {chain(i)[-1]}\r\n" if i else ""
            ),
        )
        for i in range(n)
    ]
    order = list(range(n))
    rng.shuffle(order)
    batches = [order[k::8] for k in range(8)]

    def client(batch: list[int]) -> int:
        with smtplib.SMTP("127.0.0.1", env.settings.smtp_port, timeout=60) as c:
            for i in batch:
                assert c.sendmail(f"u{i % 7}@example.org", ["dev@lists.test"], posts[i]) == {}
        return len(batch)

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(client, batches)) == n
    with env.db() as s:
        rows = s.scalars(select(Message)).all()
        by_pk = {m.id: m.message_id for m in rows}
        parents = {
            m.message_id: by_pk.get(m.parent_id) if m.parent_id is not None else None for m in rows
        }
        assert parents == {
            f"t{i}@x": (f"t{parent[i]}@x" if parent[i] is not None else None) for i in range(n)
        }
        live = s.scalars(
            select(Thread).where(Thread.merged_into_id.is_(None), Thread.message_count > 0)
        ).all()
        assert len(live) == 1 and live[0].message_count == n and live[0].subject == "Big thread"
        assert live[0].participant_count == 7
        mlist = lists.require(s, "dev")
        assert (mlist.message_count, mlist.thread_count) == (n, 1)
    assert env.gw is not None and len(env.gw.enqueued.kinds(expected=n)) == n
