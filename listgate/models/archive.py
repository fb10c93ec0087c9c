"""Lists, messages, threads and the bytes they came in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from listgate.db import Base
from listgate.limits import TITLE
from listgate.models.columns import StateString
from listgate.states import DmarcMode, ListPolicy, PostOrigin, PostState, ReplyTo


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as UTC (naive on SQLite, aware on PostgreSQL); always read back aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any]:
        """process_bind_param and the database type's own conversion in one function: every
        messages, threads and variants row of a batch binds two or three of these (TypeDecorator's
        own wraps two calls, and asks the dialect's name, per value)."""
        inner = self.impl_instance.bind_processor(dialect)
        naive = dialect.name == "sqlite"

        def process(value: datetime | None) -> Any:
            if value is not None and value.tzinfo is not None:
                if value.tzinfo is not UTC:
                    value = value.astimezone(UTC)
                if naive:
                    value = value.replace(tzinfo=None)
            return value if inner is None else inner(value)

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class MailingList(Base):
    """A list: an address people post to, and an archive."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(TITLE.chars), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    policy: Mapped[ListPolicy] = mapped_column(StateString(ListPolicy), default=ListPolicy.OPEN)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    dmarc_mode: Mapped[DmarcMode] = mapped_column(StateString(DmarcMode), default=DmarcMode.AUTO)
    moderators: Mapped[str] = mapped_column(Text, default="")
    owners: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[ReplyTo] = mapped_column(StateString(ReplyTo), default=ReplyTo.NONE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    thread_count: Mapped[int] = mapped_column(Integer, default=0)
    last_activity: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Raised in the transaction of every change to what the archive shows of the list
    # (listgate.conversations.changed): what a web process remembers lasts while it stays.
    changes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    def address(self, domain: str) -> str:
        """The posting address of this list."""
        return f"{self.name}@{domain}"

    def moderator_addresses(self) -> set[str]:
        """The configured moderators, lower-cased."""
        return {a.strip().lower() for a in self.moderators.split(",") if a.strip()}

    def owner_addresses(self) -> set[str]:
        """The configured owners, lower-cased."""
        return {a.strip().lower() for a in self.owners.split(",") if a.strip()}

    def staff_addresses(self) -> set[str]:
        """Its moderators and owners, lower-cased: they know the list, post to it as members do
        and moderate it, subscribed or not."""
        return self.moderator_addresses() | self.owner_addresses()


class RawMessage(Base):
    """The exact bytes of a received message, stored once per content hash."""

    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Blob(Base):
    """An attachment's decoded content, stored once per content hash."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Thread(Base):
    """A conversation on one list; merged threads point at their survivor.

    Once it has a visible post, its root (root_message_pk; subject, subject_norm and
    starter_name are the root's) is one of its own published messages without a parent (the
    earliest when listgate.conversations.fix_root chooses), or its earliest visible message when
    every visible post answers one not shown (held); never a held or rejected post. A start
    hidden or removed later stays the root, as its tombstone keeps its place. A merged-away
    thread (merged_into_id set) holds no messages, has no root and a message_count of 0; a
    list's thread_count counts its live threads with a visible post (tests/support/roots.py).
    Its created_at and last_activity are its visible posts' first and last dates (one showing
    nothing keeps its dates, unread); its participant_count the people with a visible post in it.
    """

    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_list_activity", "list_id", "last_activity", "id"),
        Index("ix_threads_list_subject", "list_id", "subject_norm"),
        # Partial (migration 0003): the list page's featured threads, without reading every thread.
        Index(
            "ix_threads_featured",
            "list_id",
            "last_activity",
            "id",
            sqlite_where=text("featured = 1"),
            postgresql_where=text("featured"),
        ),
        {"sqlite_autoincrement": True},  # ids in URLs are never given again (migration 0019)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_norm: Mapped[str] = mapped_column(String(255), default="")
    root_message_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    starter_name: Mapped[str] = mapped_column(String(255), default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    participant_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_activity: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("threads.id"), nullable=True)
    featured: Mapped[bool] = mapped_column(Boolean, default=False)
    # True while the thread was started by a subject-only reply ("Re: x" with no headers):
    # an original "x" arriving later may adopt it.

    mailing_list: Mapped[MailingList] = relationship(lazy="joined")


class ThreadParticipant(Base):
    """Who has a visible post in a thread (keeps participant_count incremental)."""

    __tablename__ = "thread_participants"

    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)


class Message(Base):
    """One archived post (or a held one) on one list."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("list_id", "message_id", name="uq_messages_list_message_id"),
        Index("ix_messages_thread_date", "thread_id", "date", "id"),
        Index("ix_messages_list_date", "list_id", "date", "id"),
        Index("ix_messages_from_addr", "from_addr"),
        Index("ix_messages_message_id", "message_id"),
        Index("ix_messages_parent", "parent_id"),
        Index("ix_messages_list_thread_subject", "list_id", "thread_subject_norm", "thread_date"),
        {"sqlite_autoincrement": True},  # ids in URLs are never given again (migration 0019)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    message_id: Mapped[str] = mapped_column(String(998))
    message_id_generated: Mapped[bool] = mapped_column(Boolean, default=False)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    # Position in this message's own reference chain of the chosen parent (-1: none);
    # a late ancestor adopts this message only when it sits nearer.
    parent_pos: Mapped[int] = mapped_column(Integer, default=-1)
    # The parent the headers (or the subject fallback) choose, before loops are broken:
    # parent_id equals it except on the one message of a loop whose edge is cut.
    pref_parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Names no usable ancestor and has a reply subject: its parent comes from the subject fallback.
    by_subject: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The Date and normalised Subject the threading rules read: those of the copy of this
    # Message-ID that places it (its earliest Date, docs/threading.md); the row shows the first
    # copy.
    thread_date: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=lambda ctx: ctx.get_current_parameters()["date"]
    )
    thread_subject_norm: Mapped[str] = mapped_column(
        String(255), default=lambda ctx: ctx.get_current_parameters().get("subject_norm", "")
    )
    raw_id: Mapped[int] = mapped_column(ForeignKey("raw_messages.id"))
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_norm: Mapped[str] = mapped_column(String(255), default="")
    from_name: Mapped[str] = mapped_column(String(255), default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    date: Mapped[datetime] = mapped_column(UTCDateTime())
    date_offset: Mapped[int] = mapped_column(Integer, default=0)  # sender's UTC offset, minutes
    date_header: Mapped[str] = mapped_column(Text, default="")  # as sent, kept when unusable
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When a held post was made visible (a moderator approved it); None for one visible from its
    # arrival, published at received_at (digests.published).
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    in_reply_to: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[str] = mapped_column(Text, default="")  # normalised ids, space separated
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    is_flowed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[PostState] = mapped_column(StateString(PostState), default=PostState.VISIBLE)
    origin: Mapped[PostOrigin] = mapped_column(StateString(PostOrigin), default=PostOrigin.SMTP)
    defects: Mapped[str] = mapped_column(Text, default="")  # one per line
    # When the author last edited a web post's text (the raw bytes keep the original).
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Raised each time what the post shows (text, HTML, attachments) is derived again from its
    # bytes (listgate.reparse): a web process keeping rendered posts knows them changed.
    derivation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    raw: Mapped[RawMessage] = relationship(lazy="select")
    thread: Mapped[Thread] = relationship(lazy="select", foreign_keys=[thread_id])
    attachments: Mapped[list[Attachment]] = relationship(
        lazy="select", order_by="Attachment.position", back_populates="message"
    )


class MessageRef(Base):
    """A thread key a message names: References in order (0 = first), then In-Reply-To's others."""

    __tablename__ = "message_refs"
    __table_args__ = (Index("ix_message_refs_list_ref", "list_id", "ref"),)

    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer)
    ref: Mapped[str] = mapped_column(String(998))
    # 0, or this id's place (1 = first) in In-Reply-To: several ids there are all used
    in_reply_to: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ThreadNode(Base):
    """Every Message-ID a list has seen, archived or only referenced (a placeholder)."""

    __tablename__ = "thread_nodes"
    __table_args__ = (
        UniqueConstraint("list_id", "msgid", name="uq_thread_nodes_list_msgid"),
        Index("ix_thread_nodes_thread", "thread_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    msgid: Mapped[str] = mapped_column(String(998))
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"))
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)


class MessageVariant(Base):
    """A different message (other bytes) that arrived with an archived message's Message-ID."""

    __tablename__ = "message_variants"
    __table_args__ = (
        UniqueConstraint("message_pk", "raw_id", name="uq_message_variants_message_raw"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    raw_id: Mapped[int] = mapped_column(ForeignKey("raw_messages.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    date: Mapped[datetime] = mapped_column(UTCDateTime())
    subject: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(255), default="")
    # Its In-Reply-To, References, Date and Subject place the message's id (it has the earliest
    # Date).
    places: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    raw: Mapped[RawMessage] = relationship(lazy="select")


class Attachment(Base):
    """A file attached to a message; its content lives in a Blob."""

    __tablename__ = "attachments"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids in URLs never given again (0019)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))

    message: Mapped[Message] = relationship(back_populates="attachments")
