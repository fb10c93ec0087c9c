"""What list administration leaves behind: the audit log, takedowns, moderators' reminders."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow


class AuditEntry(Base):
    """One change to a list's settings, roles or posts: who did what, and when.

    No foreign key to lists: the entries of a deleted list stay, named by list_name.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_list", "list_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer, default=0)
    list_name: Mapped[str] = mapped_column(String(64), default="")
    actor: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Removal(Base):
    """A post the moderators took down (its tombstone's words); purged: its bytes are gone."""

    __tablename__ = "removals"

    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    removed_by: Mapped[str] = mapped_column(String(320), default="")
    removed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    purged: Mapped[bool] = mapped_column(Boolean, default=False)


class ModerationReminder(Base):
    """The one daily reminder of a list's pending posts: one row per (list, UTC day)."""

    __tablename__ = "moderation_reminders"
    __table_args__ = (UniqueConstraint("list_id", "day", name="uq_moderation_reminders_list_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    day: Mapped[date] = mapped_column(Date)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
