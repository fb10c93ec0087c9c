"""People and what they are subscribed to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base
from listgate.models.archive import UTCDateTime, utcnow
from listgate.models.columns import StateString
from listgate.states import DigestFormat, DigestFrequency, SubscriptionKind, SubscriptionState


class Person(Base):
    """Per-address preferences."""

    __tablename__ = "people"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    auto_follow: Mapped[bool] = mapped_column(Boolean, default=True)
    copy_own_posts: Mapped[bool] = mapped_column(Boolean, default=False)
    digest_format: Mapped[DigestFormat] = mapped_column(
        StateString(DigestFormat, 8), default=DigestFormat.MIME
    )
    # An IANA zone name ("Europe/Paris") the archive shows times in; "" shows UTC.
    time_zone: Mapped[str] = mapped_column(String(64), default="")
    # The key in this person's secret feed links to private lists ("" until first shown); replaced
    # to revoke them.
    feed_token: Mapped[str] = mapped_column(String(64), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Subscription(Base):
    """An address's subscription to a list (list/digest) or a thread (thread/mute)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("list_id", "address", "kind", "thread_key", name="uq_subscriptions_scope"),
        Index("ix_subscriptions_list_kind", "list_id", "kind", "status"),
        Index("ix_subscriptions_thread", "thread_key", "kind"),
        # one person's rows by address (their own pages ask on every list); with the status, SQLite
        # without statistics prefers it to walking a list's members by (list, kind, status)
        Index("ix_subscriptions_address", "address", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[SubscriptionKind] = mapped_column(StateString(SubscriptionKind))
    # The thread id for thread and mute subscriptions, 0 otherwise (keeps the unique key simple).
    thread_key: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[SubscriptionState] = mapped_column(
        StateString(SubscriptionState), default=SubscriptionState.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    bounce_score: Mapped[float] = mapped_column(Float, default=0.0)
    last_bounce_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # when bounces last stopped its mail: the mail sent after it, until it started again, never
    # reached the address (a digest brings those posts)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    digest_frequency: Mapped[DigestFrequency] = mapped_column(
        StateString(DigestFrequency, 8), default=DigestFrequency.DAILY
    )
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_reason: Mapped[str] = mapped_column(String(64), default="", server_default="")
    approved_by: Mapped[str] = mapped_column(String(320), default="", server_default="")


class AutoReply(Base):
    """When an address last got an automatic reply to its mail (RFC 3834's one-per-window rule)."""

    __tablename__ = "auto_replies"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
