"""The outbox, one delivery row per (post, recipient), and bounces."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow
from listgate.models.columns import StateString
from listgate.states import BounceKind, DeliveryState


class OutboxEntry(Base):
    """Work recorded in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "done_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # a task name from listgate.dispatch
    ref_id: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[str] = mapped_column(Text, default="")  # JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A notice's claim (worker.outbox.send_notice): done_at is set around its final dot; a claim
    # whose worker died before it is released by worker.outbox.recover_stale.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set (with done_at) when the work failed for good: shown by `listgate status` and /metrics.
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")


class Delivery(Base):
    """One post to one recipient; the unique key is what makes delivery exactly-once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("message_pk", "address", name="uq_deliveries_message_address"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    address: Mapped[str] = mapped_column(String(320))
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id"), nullable=True
    )
    status: Mapped[DeliveryState] = mapped_column(
        StateString(DeliveryState), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Bounce(Base):
    """A bounce or delay notice matched to the copy it is about: a post's (delivery_id) or a
    digest's (digest_id)."""

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), nullable=True)
    digest_id: Mapped[int | None] = mapped_column(
        ForeignKey("digests_sent.id"), nullable=True, index=True
    )
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id"), nullable=True
    )
    address: Mapped[str] = mapped_column(String(320), default="")
    kind: Mapped[BounceKind] = mapped_column(StateString(BounceKind))
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
