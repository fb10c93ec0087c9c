"""One archiving batch as `listgate import` makes it, on SQLite or PostgreSQL: for the tests of
what a batch reads and writes (tests/integration/test_ingest_*.py), and the archives they and the
archiver's tests start from."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.addresses import Recipient
from listgate.batches import Item, ingest_batch
from listgate.config import Settings
from listgate.db import transaction
from listgate.mail.parser import parse
from listgate.states import PostOrigin


def site_with_dev(request: pytest.FixtureRequest) -> tuple[Settings, sessionmaker[Session]]:
    """(settings, writing session factory) of a fresh archive with the open list dev: SQLite
    ("sqlite") or PostgreSQL ("postgresql"), as the fixture's parameter says."""
    names = ("settings", "db") if request.param == "sqlite" else ("pg_settings", "pg_db")
    settings: Settings = request.getfixturevalue(names[0])
    factory: sessionmaker[Session] = request.getfixturevalue(names[1])
    with transaction(factory) as s:
        lists.create(s, "dev")
    return settings, factory


def archive_with_dev(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """The writing session factory of site_with_dev."""
    return site_with_dev(request)[1]


def raw(
    n: int, sender: str, reply_to: int | None = None, subject: str = "", minute: int = -1
) -> bytes:
    """Message n from sender@example.org (at 10:n, or 10:minute), answering message reply_to."""
    refs = f"In-Reply-To: <m{reply_to}@example.org>\r\n" if reply_to is not None else ""
    return (
        f"From: {sender}@example.org\r\nSubject: {subject or f'topic {n}'}\r\n"
        f"Date: Tue, 01 Dec 2026 10:{n if minute < 0 else minute:02d}:00 +0000\r\n"
        f"Message-ID: <m{n}@example.org>\r\n{refs}\r\nText {n}.\r\n"
    ).encode()


def archive(db: sessionmaker[Session], raws: list[bytes]) -> list[str]:
    """Archive raws as one import batch; the SQL statements it ran (one per executemany)."""
    items = [Item(parse(r), (Recipient("dev"),), PostOrigin.IMPORT) for r in raws]
    seen: list[str] = []

    def grab(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    with db() as session, session.begin():
        event.listen(session.connection(), "before_cursor_execute", grab)
        results = ingest_batch(session, items, domain="lists.test")
    assert not [r for r in results if isinstance(r, Exception)]
    return seen
