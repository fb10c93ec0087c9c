"""Migration 0022 (digests_sent.claimed_at) on an archive, SQLite and PostgreSQL: a digest a dead
worker left `sending` before the upgrade is sent again by the first sweep after it (it was lost
for good before), a sent one is left alone; down, a digest whose final dot went out (`handing`)
counts as sent; a second round does the same."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from listgate import dispatch, lists
from listgate.db import session_factory, transaction, writer
from listgate.models import DigestSent, OutboxEntry
from listgate.schema import current, head, upgrade
from tests.support.config import make_settings
from tests.support.migrations import ENGINES, before, blank_engine, column_values, downgrade
from worker import digest
from worker.context import WorkerContext

pytestmark = pytest.mark.integration

engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)
CREATED = datetime(2026, 11, 30, 0, 10, tzinfo=UTC)


def _rows(engine: Engine) -> list[tuple[str, str, datetime | None]]:
    """(address, status, claimed_at: None without the column) of each digest row, by id."""
    with session_factory(engine)() as s:
        found = s.execute(select(DigestSent.address, DigestSent.status).order_by(DigestSent.id))
        rows = [(a, str(st)) for a, st in found]
    claimed = column_values(engine, DigestSent.claimed_at) or [None] * len(rows)
    return [(a, st, c) for (a, st), c in zip(rows, claimed, strict=True)]


def test_0022_sends_again_the_digest_a_dead_worker_held(engine: Engine, tmp_path: Path) -> None:
    upgrade(engine)
    with transaction(session_factory(writer(engine))) as s:
        list_id = lists.create(s, "dev").id
    previous = before("0022")
    downgrade(engine, previous)
    with engine.begin() as conn:  # as the code before 0022 left them: one sent, one held
        for address, status in (("sent@x.test", "sent"), ("held@x.test", "sending")):
            conn.execute(
                text(
                    "INSERT INTO digests_sent (list_id, address, day, frequency, status,"
                    " message_count, last_error, created_at)"
                    " VALUES (:l, :a, '2026-11-29', 'daily', :s, 1, '', :c)"
                ),
                {"l": list_id, "a": address, "s": status, "c": CREATED},
            )
    for _ in range(2):
        upgrade(engine)
        assert current(engine) == head()
        assert _rows(engine) == [
            ("sent@x.test", "sent", None),
            ("held@x.test", "sending", CREATED),
        ], "a digest held before the upgrade is a stale claim from its creation"
        downgrade(engine, previous)
        assert current(engine) == previous
        assert _rows(engine) == [("sent@x.test", "sent", None), ("held@x.test", "sending", None)]
    upgrade(engine)
    # The beat's first sweep after the upgrade: the held digest goes out again through the outbox.
    url = engine.url.render_as_string(hide_password=False)
    ctx = WorkerContext(make_settings(tmp_path, LISTGATE_DATABASE_URL=url))
    digest.recover_stale(ctx, stale_after=300)
    with session_factory(engine)() as s:
        assert [(r.address, r.status) for r in s.scalars(select(DigestSent).order_by("id"))] == [
            ("sent@x.test", "sent"),
            ("held@x.test", "deferred"),
        ]
        held = s.scalars(select(DigestSent.id).where(DigestSent.address == "held@x.test")).one()
        assert [(e.kind, e.ref_id) for e in s.scalars(select(OutboxEntry))] == [
            (dispatch.RESEND_DIGEST, held)
        ]
    with engine.begin() as conn:  # in flight with its final dot sent: down, it counts as sent
        conn.execute(text("UPDATE digests_sent SET status = 'handing' WHERE id = :i"), {"i": held})
    downgrade(engine, previous)
    assert [s for _, s, _ in _rows(engine)] == ["sent", "sent"]
    ctx.dispose()
