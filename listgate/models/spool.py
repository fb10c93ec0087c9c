"""Mail accepted at SMTP DATA and not yet archived: the exact bytes and the envelope."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow
from listgate.models.columns import StateString
from listgate.states import SpoolState


class SpooledMail(Base):
    """One accepted message: its bytes and envelope, durable before the 250."""

    __tablename__ = "spool"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None: no MAIL FROM (a direct call)
    mail_from: Mapped[str | None] = mapped_column(Text, nullable=True)
    rcpt_tos: Mapped[str] = mapped_column(Text)  # the recipients to archive for, one per line
    # from the header scan, for logs
    message_id: Mapped[str] = mapped_column(String(1000), default="")
    # counters the gateway's answer adds to, one "name:label" a line
    counts: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[SpoolState] = mapped_column(StateString(SpoolState), default=SpoolState.PENDING)
    reason: Mapped[str] = mapped_column(Text, default="")
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_spool_state_id", "state", "id"),)

    def recipients(self) -> list[str]:
        """The envelope recipients this message is archived for."""
        return [r for r in self.rcpt_tos.split("\n") if r]


class SpoolMark(Base):
    """SQLite: the highest id of a spool file (by its generation) whose archiving committed."""

    __tablename__ = "spool_marks"

    generation: Mapped[str] = mapped_column(String(64), primary_key=True)
    archived_through: Mapped[int] = mapped_column(BigInteger, default=0)
