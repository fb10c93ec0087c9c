"""An outbox entry (a mailed command, a DSN, a moderators' notice) taken by two workers at once
is handled once.

It happens: the sweeper queues an entry again when its task seems lost (`SWEEP_AFTER`), while a
slow worker still runs it; Redis gives a task back after its visibility timeout. On PostgreSQL
both runs read the entry not done and both ran its handler: an approve by mail answered twice and
logged twice. The entry is now read FOR UPDATE: the second run waits for the first's commit, and
then finds it done. (SQLite's write lock, taken at BEGIN, kept them apart already.)
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import OutboxEntry
from listgate.schema import upgrade
from tests.support.config import make_settings
from worker.context import WorkerContext
from worker.outbox import run_outbox

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgresql":
        return make_settings(tmp_path, LISTGATE_DATABASE_URL=request.getfixturevalue("postgres_db"))
    settings = make_settings(tmp_path)
    engine = make_engine(settings)
    upgrade(engine)
    engine.dispose()
    return settings


def test_an_entry_run_by_two_workers_at_once_is_handled_once(site: Settings) -> None:
    ctx, engine = WorkerContext(site), make_engine(site)
    try:
        _handled_once(ctx, session_factory(writer(engine)))
    finally:
        ctx.dispose()  # no connection left to the garbage collector (a later test's warning)
        engine.dispose()


def _handled_once(ctx: WorkerContext, db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        entry = OutboxEntry(kind=dispatch.HANDLE_COMMAND, payload="{}")
        session.add(entry)
        session.flush()
        entry_id = entry.id
    calls: list[int] = []
    entered = [threading.Event(), threading.Event()]
    release = threading.Event()

    def handler(n: int):  # type: ignore[no-untyped-def]
        def handle(_session: Session, _entry: OutboxEntry) -> list[OutboxEntry]:
            calls.append(n)
            entered[n].set()
            if n == 0:
                release.wait(30)  # the first run is slow: it holds the entry meanwhile
            return []

        return handle

    runs = [
        threading.Thread(target=run_outbox, args=(ctx, entry_id, handler(n)), daemon=True)
        for n in (0, 1)
    ]
    runs[0].start()
    assert entered[0].wait(30), "the first run never reached its handler"
    runs[1].start()
    entered[1].wait(3)  # the defect: the second run got into the handler meanwhile
    release.set()
    for run in runs:
        run.join(60)
    assert calls == [0], "the entry was handled by both runs"
    with db() as session:
        done = session.get(OutboxEntry, entry_id)
        assert done is not None and done.done_at is not None and done.failed_at is None
