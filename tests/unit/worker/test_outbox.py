"""Outbox work in the worker: transient errors are retried,
permanent ones end as failed; replies are rate-limited.
"""

from __future__ import annotations

import json
import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from listgate import dispatch
from listgate.db import transaction
from listgate.models import OutboxEntry
from tests.support.config import make_settings
from worker import outbox
from worker.context import WorkerContext


@pytest.fixture
def ctx(tmp_path: Path, engine: Engine) -> Iterator[WorkerContext]:
    settings = make_settings(tmp_path, LISTGATE_OUTBOUND=f"maildir:{tmp_path / 'out'}")
    context = WorkerContext(settings)
    yield context
    context.dispose()


def record(ctx: WorkerContext, kind: str, payload: dict) -> int:
    with transaction(ctx.db) as session:
        return dispatch.record(session, kind, 0, payload).id


def entry(ctx: WorkerContext, entry_id: int) -> OutboxEntry:
    with ctx.db() as session:
        return session.get_one(OutboxEntry, entry_id)


def delivered(ctx: WorkerContext) -> list[str]:
    box = mailbox.Maildir(Path(ctx.settings.outbound.split(":", 1)[1]), create=True)
    return sorted(str(m["To"]) for m in box)


def test_a_transient_error_propagates_for_a_retry_and_leaves_the_entry_open(
    ctx: WorkerContext,
) -> None:
    entry_id = record(ctx, dispatch.HANDLE_COMMAND, {"command": "help"})
    locked = OperationalError(
        "INSERT ...", {}, type("E", (Exception,), {"sqlite_errorcode": 5})("database is locked")
    )
    with pytest.raises(OperationalError):
        outbox.run_outbox(ctx, entry_id, lambda s, e: (_ for _ in ()).throw(locked))
    assert entry(ctx, entry_id).done_at is None and entry(ctx, entry_id).failed_at is None


def test_a_permanent_error_ends_the_entry_as_failed_and_queues_the_answer(
    ctx: WorkerContext,
) -> None:
    entry_id = record(ctx, dispatch.HANDLE_COMMAND, {"command": "unsubscribe"})
    broken = IntegrityError(
        "UPDATE subscriptions ...", {}, Exception("FOREIGN KEY constraint failed")
    )
    answered: list[str] = []

    def answer(session: Session, failed: OutboxEntry, reference: str) -> list[OutboxEntry]:
        answered.append(reference)
        return []

    outbox.run_outbox(ctx, entry_id, lambda s, e: (_ for _ in ()).throw(broken), answer)
    row = entry(ctx, entry_id)
    assert row.done_at is not None and row.failed_at is not None
    assert "IntegrityError" in row.last_error and answered and answered[0] in row.last_error
    outbox.run_outbox(ctx, entry_id, lambda s, e: pytest.fail("a failed entry ran again"))


def test_a_notice_with_a_bad_payload_ends_as_failed(ctx: WorkerContext) -> None:
    entry_id = record(
        ctx, dispatch.SEND_NOTICE, {"template": "no-such-template", "to": "a@example.org"}
    )
    outbox.send_notice(ctx, entry_id)
    assert (
        entry(ctx, entry_id).failed_at is not None
        and "unknown notice template" in entry(ctx, entry_id).last_error
    )


def test_one_automatic_reply_per_sender_per_window(ctx: WorkerContext) -> None:
    reply = {"template": "help", "list": "dev", "reply": True}
    ids = [
        record(ctx, dispatch.SEND_NOTICE, {**reply, "to": to})
        for to in ("a@example.org", "A@example.org", "b@example.org")
    ]
    proven = record(
        ctx,
        dispatch.SEND_NOTICE,
        {
            "template": "welcome",
            "list": "dev",
            "to": "a@example.org",
            "reply": True,
            "authenticated": True,
        },
    )
    plain = record(
        ctx, dispatch.SEND_NOTICE, {"template": "goodbye", "list": "dev", "to": "a@example.org"}
    )
    for entry_id in (*ids, proven, plain):
        outbox.send_notice(ctx, entry_id)
    assert delivered(ctx) == ["a@example.org", "a@example.org", "a@example.org", "b@example.org"]
    assert "one automatic reply per sender" in entry(ctx, ids[1]).last_error
    with ctx.db() as session:
        assert json.loads(session.get_one(OutboxEntry, ids[0]).payload)["to"] == "a@example.org"
        assert session.scalar(select(OutboxEntry.failed_at).where(OutboxEntry.id == ids[1])) is None


def test_the_window_can_be_turned_off(ctx: WorkerContext, tmp_path: Path) -> None:
    ctx.settings = ctx.settings.with_(auto_reply_window=0)
    for _ in range(3):
        outbox.send_notice(
            ctx,
            record(
                ctx,
                dispatch.SEND_NOTICE,
                {"template": "help", "list": "dev", "reply": True, "to": "a@example.org"},
            ),
        )
    assert len(delivered(ctx)) == 3
