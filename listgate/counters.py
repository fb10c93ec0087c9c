"""Counting events in the database, so every process (and every replica) adds to one total."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from listgate.models import Counter

RECEIVED = "received"  # messages accepted at SMTP DATA
STORED = "stored"  # messages archived (not duplicates)
REFUSED = "refused"  # label: the reason, e.g. "unknown-list", "too-big", "not-member"


def bump(session: Session, name: str, label: str = "", n: int = 1) -> None:
    """Add n to counter (name, label) in the caller's transaction, creating it at 0 if needed."""
    label = label[:128]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(Counter).values(name=name, label=label, value=n)
    elif dialect == "sqlite":
        stmt = sqlite.insert(Counter).values(name=name, label=label, value=n)
    else:
        _bump_portable(session, name, label, n)
        return
    stmt = stmt.on_conflict_do_update(index_elements=[Counter.name, Counter.label],
                                      set_={"value": Counter.value + stmt.excluded.value})
    session.execute(stmt)


def _bump_portable(session: Session, name: str, label: str, n: int) -> None:
    row = session.get(Counter, (name, label), with_for_update=True)
    if row is None:
        session.add(Counter(name=name, label=label, value=n))
    else:
        row.value += n
    session.flush()


def values(session: Session, name: str) -> dict[str, int]:
    """Every label of a counter with its value ({} when it never happened)."""
    rows = session.execute(select(Counter.label, Counter.value).where(Counter.name == name))
    return {label: value for label, value in rows}


def total(session: Session, name: str) -> int:
    """The sum of a counter over all its labels."""
    return sum(values(session, name).values())
