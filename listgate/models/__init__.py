"""The listgate data model (SQLAlchemy 2, typed)."""

from listgate.models import search  # noqa: F401 - the search objects (FTS5, tsvector) beside their table
from listgate.models.admin import AuditEntry, ModerationReminder, Removal
from listgate.models.archive import (
    Attachment,
    Blob,
    MailingList,
    Message,
    MessageRef,
    MessageVariant,
    RawMessage,
    Thread,
    ThreadNode,
    ThreadParticipant,
)
from listgate.models.counters import Counter
from listgate.models.delivery import Bounce, Delivery, OutboxEntry
from listgate.models.digests import DigestSent
from listgate.models.epoch import FactsEpoch
from listgate.models.notposted import NotPosted
from listgate.models.people import AutoReply, Person, Subscription
from listgate.models.reading import MessageEdit, ReadMark
from listgate.models.spool import SpooledMail, SpoolMark
from listgate.models.web import (
    Ban,
    PostHiding,
    RateHit,
    Report,
    UsedToken,
    Vote,
    WebSession,
)

__all__ = [
    "Attachment",
    "AuditEntry",
    "AutoReply",
    "Ban",
    "Blob",
    "Bounce",
    "Counter",
    "Delivery",
    "DigestSent",
    "FactsEpoch",
    "MailingList",
    "Message",
    "MessageEdit",
    "MessageRef",
    "MessageVariant",
    "ModerationReminder",
    "NotPosted",
    "OutboxEntry",
    "Person",
    "PostHiding",
    "RateHit",
    "RawMessage",
    "ReadMark",
    "Removal",
    "Report",
    "SpoolMark",
    "SpooledMail",
    "Subscription",
    "Thread",
    "ThreadNode",
    "ThreadParticipant",
    "UsedToken",
    "Vote",
    "WebSession",
]
