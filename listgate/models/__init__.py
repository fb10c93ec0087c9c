"""The listgate data model (SQLAlchemy 2, typed)."""

from listgate.models.archive import (
    Attachment,
    Blob,
    MailingList,
    Message,
    MessageRef,
    RawMessage,
    Thread,
    ThreadNode,
    ThreadParticipant,
)
from listgate.models.counters import Counter
from listgate.models.delivery import Bounce, Delivery, OutboxEntry
from listgate.models.people import Person, Subscription

__all__ = [
    "Attachment",
    "Blob",
    "Bounce",
    "Counter",
    "Delivery",
    "MailingList",
    "Message",
    "MessageRef",
    "OutboxEntry",
    "Person",
    "RawMessage",
    "Subscription",
    "Thread",
    "ThreadNode",
    "ThreadParticipant",
]
