"""Thread keys: the ids a message names that can join threads, read from its parsed headers
alone (so the parser's side can work them out; listgate.forest chooses parents by them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

MIN_KEY_LENGTH = 4  # shorter ids ("<a@b>") are junk, never thread keys


@dataclass(frozen=True)
class Keys:
    """The thread keys a message names, junk left out: In-Reply-To's ids and References' ids, in
    order."""

    irt: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()

    @cached_property
    def named(self) -> list[tuple[str, int]]:
        """Every key once: References order, then In-Reply-To ids not in References; with
        In-Reply-To places (worked out once: threading a message asks six times)."""
        place = {k: i + 1 for i, k in enumerate(self.irt)}
        return [(k, place.get(k, 0)) for k in dict.fromkeys(self.refs + self.irt)]


def is_thread_key(token: str) -> bool:
    """True for an id that can join threads: local@domain, both parts present, not absurdly
    short."""
    local, at, domain = token.rpartition("@")
    return bool(at and local and domain) and len(token) >= MIN_KEY_LENGTH


def thread_keys(own: str, in_reply_to: Iterable[str], references: Iterable[str]) -> Keys:
    """The keys of a message from its parsed headers; its own id, repeats and junk tokens
    dropped."""

    def keep(ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for i in ids if i != own and is_thread_key(i)))

    return Keys(irt=keep(in_reply_to)[:20], refs=keep(references)[-200:])  # bounds against junk
