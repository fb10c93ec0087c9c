"""Mail accepted with a 250 and not posted (an automatic reply, a loop...): kept with its reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow


class NotPosted(Base):
    """One accepted mail that did not become a post; a moderator may release it as one."""

    __tablename__ = "not_posted"
    __table_args__ = (Index("ix_not_posted_list_open", "list_id", "released_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    raw_id: Mapped[int] = mapped_column(ForeignKey("raw_messages.id"))
    message_id: Mapped[str] = mapped_column(String(998), default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    released_by: Mapped[str] = mapped_column(String(320), default="")
    message_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the post it became
