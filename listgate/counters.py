"""Counting events in the database, so every process (and every replica) adds to one total."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from listgate import store
from listgate.models import Counter

RECEIVED = "received"  # messages accepted at SMTP DATA
STORED = "stored"  # messages archived (not duplicates)
REFUSED = "refused"  # label: the reason, e.g. "unknown-list", "too-big", "not-member"


def bump(session: Session, name: str, label: str = "", n: int = 1) -> None:
    """Add n to counter (name, label) in the caller's transaction, creating it at 0 if needed."""
    session.execute(
        store.of(session).upsert_adding(Counter, ("name", "label"), "value"),
        {"name": name, "label": label[:128], "value": n},
    )


def bump_all(session: Session, counts: dict[tuple[str, str], int]) -> None:
    """Add each count to its counter (name, label) in one executemany, in the caller's
    transaction."""
    if counts:
        session.connection().execute(
            store.of(session).upsert_adding(Counter, ("name", "label"), "value"),
            [
                {"name": name, "label": label[:128], "value": n}
                for (name, label), n in sorted(counts.items())
            ],
        )


def values(session: Session, name: str) -> dict[str, int]:
    """Every label of a counter with its value ({} when it never happened)."""
    rows = session.execute(select(Counter.label, Counter.value).where(Counter.name == name))
    return {row.label: row.value for row in rows}


def total(session: Session, name: str) -> int:
    """The sum of a counter over all its labels."""
    return sum(values(session, name).values())
