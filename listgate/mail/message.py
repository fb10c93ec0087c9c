"""What parse() and parse_head() give: frozen, typed, the exact bytes kept."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from listgate.mail import fields
from listgate.mail.keys import Keys, thread_keys
from listgate.mail.names import CC, TO
from listgate.mail.subjects import is_reply_subject, normalize_subject
from listgate.mail.values import (
    addresses,
    decode_header,
    first_text,
    reference_chain,
    text_value,
)


@dataclass(frozen=True)
class ParsedAttachment:
    """A decoded attachment."""

    filename: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        """Content hash: attachments are stored once per hash."""
        return hashlib.sha256(self.data).hexdigest()


Bodies = tuple[str, str, tuple[ParsedAttachment, ...]]  # (plain text, html, attachments)


@dataclass(frozen=True)
class MessageHead:
    """What a scan of the header block tells (no body decoded): enough to answer at SMTP DATA."""

    message_id: str
    message_id_generated: bool
    from_addr: str
    auto_submitted: str
    precedence: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)

    @cached_property
    def _first(self) -> dict[str, str]:
        """Each field's first value by its name in lower case (admission asks for about eight
        fields a message, most of them absent: one pass over the fields, not one per question)."""
        first: dict[str, str] = {}
        for key, value in self.headers:
            first.setdefault(key.lower(), value)
        return first

    def header(self, name: str) -> str:
        """The first value of a header, decoded, or '' (as first_text reads it)."""
        value = self._first.get(name.lower())
        return "" if value is None else decode_header(text_value(value))


@dataclass(frozen=True)
class ParsedMessage:
    """What listgate needs from a message, plus the exact bytes it came in."""

    raw: bytes
    message_id: str
    message_id_generated: bool
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_name: str
    from_addr: str
    date: datetime  # UTC
    date_offset: int  # the sender's offset from UTC, minutes
    date_header: str
    date_generated: bool
    body_text: str
    body_html: str
    is_flowed: bool
    attachments: tuple[ParsedAttachment, ...]
    auto_submitted: str
    precedence: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str:
        """The first value of a header, decoded, or ''."""
        return first_text(self.headers, name)

    @cached_property
    def sha256(self) -> str:
        """Its bytes' hash: raw rows are stored once per hash (hashed once however often asked)."""
        return hashlib.sha256(self.raw).hexdigest()

    @cached_property
    def subject_norm(self) -> str:
        """The subject as threading and search compare it (listgate.mail.subjects)."""
        return normalize_subject(self.subject)

    @cached_property
    def thread_keys(self) -> Keys:
        """The ids it names that can join threads (listgate.mail.keys)."""
        return thread_keys(self.message_id, self.in_reply_to, self.references)

    @cached_property
    def to_addrs(self) -> tuple[str, ...]:
        """The To addresses, lower-cased (read when asked: the archive does not show them)."""
        return tuple(a for _, a in addresses(fields.read(self.raw), TO))

    @cached_property
    def cc_addrs(self) -> tuple[str, ...]:
        """The Cc addresses, lower-cased (read when asked)."""
        return tuple(a for _, a in addresses(fields.read(self.raw), CC))

    @property
    def chain(self) -> tuple[str, ...]:
        """References then In-Reply-To, oldest first, own id and repeats removed."""
        return reference_chain(self.message_id, self.references, self.in_reply_to)

    @property
    def is_reply_subject(self) -> bool:
        """The subject says it is a reply (Re:, Aw:, Sv:, [list] Re: ...)."""
        return is_reply_subject(self.subject)
