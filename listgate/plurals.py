"""Counting words for people to read: "1 post", "2 posts", "1 outbox entry", "3 outbox entries"."""

from __future__ import annotations

IRREGULAR = {"person": "people"}


def plural(noun: str) -> str:
    """The plural of an English noun (of the few this project counts)."""
    if noun in IRREGULAR:
        return IRREGULAR[noun]
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def count(n: int, noun: str) -> str:
    """n and the noun, plural unless n is 1 ('0 threads', '1 thread', '2 threads')."""
    return f"{n} {noun if n == 1 else plural(noun)}"
