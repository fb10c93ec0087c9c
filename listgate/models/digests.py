"""What digests were sent: one row per (list, address, frequency, day), so each goes out once."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow
from listgate.models.columns import StateString
from listgate.states import DigestFrequency, DigestState


class DigestSent(Base):
    """One subscriber's digest of one list for one UTC day or week (claimed, then sent).

    A weekly digest's day is the Monday its week starts on.
    """

    __tablename__ = "digests_sent"
    __table_args__ = (
        UniqueConstraint("list_id", "address", "frequency", "day", name="uq_digests_sent_scope"),
        # a period's rows: the addresses a run claimed, the digests made before a post was hidden
        Index("ix_digests_sent_period", "list_id", "frequency", "day"),
        # the claims a dead worker left (worker.digest.recover_stale, every 30 s)
        Index("ix_digests_sent_claims", "status", "claimed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    address: Mapped[str] = mapped_column(String(320))
    day: Mapped[date] = mapped_column(Date)
    frequency: Mapped[DigestFrequency] = mapped_column(
        StateString(DigestFrequency, 8), default=DigestFrequency.DAILY
    )
    status: Mapped[DigestState] = mapped_column(
        StateString(DigestState), default=DigestState.SENDING
    )
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # when the run or resend sending it claimed it (its handover checks the claim is still its own)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
