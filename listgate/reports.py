"""Reports on posts; hiding and restoring the posts, keeping the thread and list counts right."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from listgate.models import Message
from listgate.models.web import PostHiding, Report
from listgate.states import PostState, ReportState
from listgate.takedowns import count_step


def hide(session: Session, msg: Message, now: datetime | None = None) -> None:
    """Take a visible post off the archive (pending review); counts go down. The digests made
    until it is put back go without it (PostHiding)."""
    if msg.status != PostState.VISIBLE:
        return
    count_step(session, msg, -1)  # first: it takes the list lock
    msg.status = PostState.HIDDEN
    session.add(
        PostHiding(message_pk=msg.id, list_id=msg.list_id, hidden_at=now or datetime.now(UTC))
    )


def restore(session: Session, msg: Message, now: datetime | None = None) -> None:
    """Put a hidden post back; counts go up again. The readers whose digest was made while it
    was hidden get it in their next digest (worker/digest_owed.py)."""
    if msg.status != PostState.HIDDEN:
        return
    count_step(session, msg, 1)  # first: it takes the list lock
    msg.status = PostState.VISIBLE
    session.execute(
        update(PostHiding)
        .where(PostHiding.message_pk == msg.id, PostHiding.restored_at.is_(None))
        .values(restored_at=now or datetime.now(UTC))
    )


def open_reports(session: Session, message_pk: int) -> int:
    """How many people reported this post and are waiting for a moderator."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Report)
            .where(Report.message_pk == message_pk, Report.status == ReportState.OPEN)
        )
        or 0
    )


def close_reports(session: Session, message_pk: int, status: str, by: str) -> None:
    """Mark every open report on a post as dealt with."""
    session.execute(
        update(Report)
        .where(Report.message_pk == message_pk, Report.status == ReportState.OPEN)
        .values(status=status, resolved_at=datetime.now(UTC), resolved_by=by)
    )
