"""Task names and how work is handed to the worker, without importing it.

Work is first recorded in the outbox (same transaction as the change); after the commit
`enqueue` sends it by task name. If the broker loses it, the worker's sweeper finds the
outbox row again.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from listgate import places, store
from listgate.models import OutboxEntry

log = logging.getLogger(__name__)

FANOUT = "listgate.fanout"  # (outbox_id, message_pk): deliver a post to its recipients
SEND_NOTICE = "listgate.send_notice"  # (outbox_id,): a one-off generated mail from the payload
HANDLE_COMMAND = "listgate.handle_command"  # (outbox_id,): a +subscribe/+unsubscribe/... mail
HANDLE_BOUNCE = "listgate.handle_bounce"  # (outbox_id,): a mail to a VERP bounce address
SWEEP_OUTBOX = "listgate.sweep_outbox"
SEND_DIGESTS = "listgate.send_digests"
RESEND_DIGEST = (
    "listgate.resend_digest"  # (outbox_id,): a digest a relay deferred; ref_id = digests_sent.id
)
RETRY_DEFERRED = "listgate.retry_deferred"
NOTIFY_MODERATORS = (
    "listgate.notify_moderators"  # (outbox_id,): a held post or a report; ref_id = message pk
)
SEND_REMINDERS = "listgate.send_reminders"  # daily: one reminder per list of posts still held


class Sender(Protocol):
    """Anything with Celery's send_task signature."""

    def send_task(self, name: str, args: Any = ..., **kwargs: Any) -> Any: ...


def record(
    session: Session, kind: str, ref_id: int = 0, payload: dict[str, Any] | None = None
) -> OutboxEntry:
    """Record work in the caller's transaction; it is sent only after that commits."""
    values = {
        "kind": kind,
        "ref_id": ref_id,
        "payload": json.dumps(payload or {}),
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }
    # One Core INSERT (it runs for every post): no unit-of-work flush. The returned object is
    # not in the session; it carries what enqueue needs (id, kind, ref_id). In an archiving
    # batch the row goes in with the batch's others (listgate.places), and the id is set then:
    # before the commit, and before any statement that could read the outbox.
    entry = OutboxEntry(**values)
    places.insert_rows(session.connection(), _insert(), [values], [entry])
    kept = session.info.get(_KEPT)
    if kept is not None:
        kept.append(entry)
    return entry


# session.info: the entries a collecting session recorded (not named like a task)
_KEPT = "dispatch: outbox entries kept"


def collect(session: Session) -> list[OutboxEntry]:
    """The list where every entry recorded in session from now on is kept, to enqueue after the
    commit: for a caller (the `listgate` command) that runs actions whose outcomes it does not
    see one by one."""
    kept: list[OutboxEntry] = session.info.setdefault(_KEPT, [])
    return kept


@functools.cache
def _insert() -> Insert:
    # The outbox names no message, thread node or reference row (no foreign key, no trigger): the
    # rows an archiving batch defers (listgate.places) need not be written before it.
    table = cast(Table, OutboxEntry.__table__)
    return store.apart(insert(table).returning(table.c.id, sort_by_parameter_order=True))


def task_args(entry: OutboxEntry) -> list[int]:
    """The arguments a task of this outbox entry takes: ids only, never objects."""
    return [entry.id, entry.ref_id] if entry.kind == FANOUT else [entry.id]


def enqueue(
    sender: Sender | None,
    entries: list[OutboxEntry],
    on_error: Callable[[Exception], None] | None = None,
) -> int:
    """Send committed outbox entries to the broker; failures are left to the sweeper."""
    if sender is None:
        return 0
    sent = 0
    for entry in entries:
        try:
            sender.send_task(entry.kind, args=task_args(entry))
            sent += 1
        except Exception as exc:  # noqa: BLE001 - the broker being down must not fail the post
            log.warning(
                "broker unavailable, outbox entry %s left for the sweeper: %s", entry.id, exc
            )
            if on_error:
                on_error(exc)
            break
    return sent
