"""What the archive remembers for readers: where each left a thread, versions of edited posts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow


class ReadMark(Base):
    """The newest post a signed-in reader saw in a thread, and when ("unread since last visit")."""

    __tablename__ = "read_marks"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    last_seen_pk: Mapped[int] = mapped_column(Integer, default=0)
    visited_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MessageEdit(Base):
    """One version of a web post's text; version 1 is the text first sent (raw bytes stay)."""

    __tablename__ = "message_edits"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    body_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
