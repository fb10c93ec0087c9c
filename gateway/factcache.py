"""The facts a batch is decided by, kept by the gateway's writer from one batch to the next
(PostgreSQL, where the spool is a table of the archive database).

Every look-up (listgate.admission.admit_all) reads, with the lists and the bans, members and
archived Message-IDs a batch asks about, the facts epoch (listgate.models.epoch) in the same
statement. The cache keeps the lists, bans and members it read under that epoch (never the
archived Message-IDs). A later batch whose every question it can answer is decided here with no
statement, and its append is made conditional (listgate.spool.Spool.append_if): it inserts every
row only if the epoch still reads the same and no message with any of its Message-IDs is
archived on the list it goes to, checked in the append's own statement, else none. Zero rows:
the batch is decided again from a look-up, as every batch is without the cache. So what a post
is answered is what the look-up would have answered at the append's snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from listgate import bans, places
from listgate.addresses import Recipient
from listgate.admission import Ask, BatchFacts, IngestResult, admit, posting_addresses
from listgate.models import MailingList
from listgate.states import ListPolicy

KEPT = 100_000  # facts kept at most (addresses over all lists); more: start afresh

Decided = dict[Recipient, IngestResult | None]


@dataclass(frozen=True)
class Known:
    """A batch decided from the cache: each message's answers, the epoch they hold under, and the
    (list id, Message-ID) pairs the rules took as not archived."""

    decided: list[Decided]
    epoch: int
    unarchived: tuple[tuple[int, str], ...]


@dataclass
class _Answers:
    """listgate.admission.Facts from the cache; every Message-ID asked about taken as not archived,
    and noted for the append to check."""

    bans: dict[int, dict[str, bool]]
    members: dict[int, dict[str, bool]]
    unarchived: list[tuple[int, str]] = field(default_factory=list)

    def first_banned(self, list_id: int, addresses: list[str]) -> str:
        """The first of addresses banned from posting to the list ('' if none)."""
        known = self.bans[list_id]
        return next((a for a in bans.posting_forms(addresses) if known[a]), "")

    def archived(self, list_id: int, message_id: str) -> places.Archived | None:
        """None: the append checks it (Spool.append_if)."""
        self.unarchived.append((list_id, message_id))
        return None

    def same_bytes(self, existing: places.Archived, raw: bytes) -> bool:
        """Never asked: archived answers None."""
        raise AssertionError("the cache decides nothing about archived messages")

    def member(self, mlist: MailingList, address: str) -> bool:
        """A member (listgate.policy.is_member), as read."""
        return self.members[mlist.id][address]


class FactCache:
    """Lists, bans and members read under one facts epoch (see the module)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.epoch: int | None = None
        self.lists: dict[str, MailingList] = {}  # by the name a recipient gives
        self.bans: dict[int, dict[str, bool]] = {}  # list id -> address -> banned?
        self.members: dict[int, dict[str, bool]] = {}  # list id -> From -> member?
        self._size = 0

    def learn(self, facts: BatchFacts, lists: dict[str, MailingList]) -> None:
        """Keep what a look-up read (its epoch: facts.epoch; None, no epoch row: keep nothing)."""
        with self._lock:
            if facts.epoch != self.epoch or self._size > KEPT:
                self._forget(facts.epoch)
            if facts.epoch is None:
                return
            self.lists.update(lists)
            for kept, read in ((self.bans, facts.bans), (self.members, facts.members)):
                for list_id, values in read.items():
                    kept.setdefault(list_id, {}).update(values)
                    self._size += len(values)

    def _forget(self, epoch: int | None) -> None:
        self.epoch, self.lists, self.bans, self.members, self._size = epoch, {}, {}, {}, 0

    def decide(self, asks: Sequence[Ask], *, domain: str) -> Known | None:
        """Every message's answers from the cache, or None when it lacks a fact one of them needs
        (a list, a ban or membership not read yet)."""
        with self._lock:  # the rules are a few dict look-ups a message: under the lock
            epoch = self.epoch
            if epoch is None or not self._knows(asks):
                return None
            answers = _Answers(self.bans, self.members)
            decided: list[Decided] = [
                {
                    r: admit(answers, ask, self.lists[r.list_name], r, domain=domain)
                    for r in ask.recipients
                }
                for ask in asks
            ]
        return Known(decided, epoch, tuple(dict.fromkeys(answers.unarchived)))

    def _knows(self, asks: Sequence[Ask]) -> bool:
        for ask in asks:
            addresses = bans.posting_forms(posting_addresses(ask.head, ask.envelope_from))
            for recipient in ask.recipients:
                mlist = self.lists.get(recipient.list_name)
                if mlist is None:
                    return False
                banned = self.bans.get(mlist.id, {})
                if any(a not in banned for a in addresses):
                    return False
                members = self.members.get(mlist.id, {})
                if mlist.policy == ListPolicy.MEMBERS and ask.head.from_addr not in members:
                    return False
        return True
