"""The listgate data model (SQLAlchemy 2, typed)."""

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
from listgate.models.people import Person, Subscription
from listgate.models.web import Ban, RateHit, Report, UsedToken, Vote

__all__ = [
    "Attachment",
    "Ban",
    "Blob",
    "Bounce",
    "Counter",
    "Delivery",
    "DigestSent",
    "MailingList",
    "Message",
    "MessageRef",
    "MessageVariant",
    "OutboxEntry",
    "Person",
    "RateHit",
    "RawMessage",
    "Report",
    "Subscription",
    "Thread",
    "ThreadNode",
    "ThreadParticipant",
    "UsedToken",
    "Vote",
]
