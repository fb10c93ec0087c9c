"""Migration 0023 (outbox.claimed_at) on SQLite and PostgreSQL: the outbox as the code before it
left it (a notice pending, one done) keeps its meaning; down, a notice claimed and not done goes
back to the sweeper (sent again, never lost); a second round does the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update

from listgate import dispatch
from listgate.db import session_factory
from listgate.models import OutboxEntry
from listgate.schema import current, head, upgrade
from tests.support.config import make_settings
from tests.support.migrations import ENGINES, before, blank_engine, downgrade
from worker import outbox
from worker.context import WorkerContext

pytestmark = pytest.mark.integration

engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)
CREATED = datetime(2026, 11, 30, 0, 10, tzinfo=UTC)


class Queue:
    """A broker stand-in: the tasks the sweeper sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[int]]] = []

    def send_task(self, name: str, args: list[int]) -> None:
        self.sent.append((name, args))


def test_0023_keeps_the_outbox_and_hands_claims_back_down(engine: Engine, tmp_path: Path) -> None:
    previous = before("0023")
    upgrade(engine)
    downgrade(engine, previous)
    with engine.begin() as conn:  # as the code before 0023 left them: one notice done, one not
        for payload, done in (('{"to": "done@x.test"}', CREATED), ('{"to": "new@x.test"}', None)):
            conn.execute(
                text(
                    "INSERT INTO outbox (kind, ref_id, payload, created_at, done_at, attempts,"
                    " last_error) VALUES (:k, 0, :p, :c, :d, 0, '')"
                ),
                {"k": dispatch.SEND_NOTICE, "p": payload, "c": CREATED, "d": done},
            )
    url = engine.url.render_as_string(hide_password=False)
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_DATABASE_URL=url))
    queue = Queue()
    ctx.sender = queue
    for _ in range(2):
        upgrade(engine)
        assert current(engine) == head()
        with session_factory(engine)() as s:
            rows = s.execute(select(OutboxEntry.id, OutboxEntry.done_at, OutboxEntry.claimed_at))
            (done_id, done_at, done_claim), (new_id, new_done, new_claim) = rows.all()
        assert (done_at, done_claim, new_done, new_claim) == (CREATED, None, None, None)
        _claim(engine, new_id)  # a worker claims the new one, then dies
        queue.sent.clear()
        assert outbox.sweep_outbox(ctx, older_than=0) == 0, "a claimed notice is not swept"
        outbox.recover_stale(ctx, stale_after=300)
        assert queue.sent == [(dispatch.SEND_NOTICE, [new_id])], "a stale claim is sent again"
        _claim(engine, new_id)
        downgrade(engine, previous)
        assert current(engine) == previous
        with engine.begin() as conn:
            pending = conn.execute(text("SELECT id FROM outbox WHERE done_at IS NULL")).scalars()
            assert pending.all() == [new_id], "down, the claimed notice is the sweeper's again"
    assert done_id != new_id
    ctx.dispose()


def _claim(engine: Engine, entry_id: int) -> None:
    """As a worker's send_notice claims an entry (an hour ago: stale)."""
    with session_factory(engine)() as s, s.begin():
        s.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == entry_id)
            .values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
        )
