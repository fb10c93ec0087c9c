"""What people do on the web archive: votes, reports, bans, and rate-limit counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow
from listgate.models.columns import StateString
from listgate.states import ReportState


class Vote(Base):
    """One person's "was this valuable?" answer on one post; changeable."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("message_pk", "address", name="uq_votes_message_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    valuable: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Report(Base):
    """A reader's report of a post, kept for the list's moderators."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("message_pk", "address", name="uq_reports_message_address"),
        Index("ix_reports_list_status", "list_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ReportState] = mapped_column(StateString(ReportState), default=ReportState.OPEN)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str] = mapped_column(String(320), default="")


class PostHiding(Base):
    """A stretch of time a post was hidden by readers' reports: from hidden_at until a moderator
    put it back (restored_at; None while it is hidden). The digests read them: a digest made
    while its post was hidden went without it, and the post put back comes in its readers'
    next digest (worker/digest_owed.py)."""

    __tablename__ = "post_hidings"
    __table_args__ = (Index("ix_post_hidings_list_restored", "list_id", "restored_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    hidden_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Ban(Base):
    """An address a moderator banned from posting to a list."""

    __tablename__ = "bans"
    __table_args__ = (UniqueConstraint("list_id", "address", name="uq_bans_list_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text, default="")
    banned_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RateHit(Base):
    """Actions counted per key and fixed time window (shared by every web process)."""

    __tablename__ = "rate_hits"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix time // window length
    count: Mapped[int] = mapped_column(Integer, default=0)


class UsedToken(Base):
    """A single-use link (sign-in) that has been used; its digest, never the token."""

    __tablename__ = "used_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebSession(Base):
    """A signed-in browser: the cookie holds a random id, this row its digest; sign-out ends it."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_address", "address"),)

    # sha256 of the id, never the id
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
