"""Two moderators release the same not-posted mail at once, on PostgreSQL.

An automatic reply to dev was kept in the not-posted queue. Ann and Bob both run `listgate
not-posted release` on it: Ann's transaction releases it and is still open when Bob's starts.
Bob must be told it was already released by Ann; the entry keeps Ann as who released it, and
the post exists once, with one fan-out queued.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists
from listgate.db import transaction
from listgate.ingest import DROPPED, ingest, release
from listgate.mail.parser import parse
from listgate.models import Message, NotPosted, OutboxEntry

pytestmark = pytest.mark.integration

AUTO_REPLY = (
    b"From: away@example.org\r\nTo: dev@lists.test\r\nSubject: Out of office\r\n"
    b"Message-ID: <away1@example.org>\r\nAuto-Submitted: auto-replied\r\n"
    b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\nBack on Monday.\r\n"
)


def waiting_for_ann(db: sessionmaker[Session], bob: threading.Thread) -> None:
    """Return once Bob's transaction waits for a lock Ann's holds (or Bob is done already)."""
    deadline = time.monotonic() + 20
    while bob.is_alive() and time.monotonic() < deadline:
        with db() as session:
            if session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        time.sleep(0.02)


def test_two_moderators_releasing_one_entry_at_once(pg_db: sessionmaker[Session]) -> None:
    with transaction(pg_db) as session:
        mlist = lists.create(session, "dev")
        kept = ingest(session, parse(AUTO_REPLY), mlist, domain="lists.test")
        assert kept.status == DROPPED, kept
        entry_id = session.scalars(select(NotPosted.id)).one()

    bob: list[str] = []

    def bob_releases() -> None:
        try:
            with transaction(pg_db) as s:
                result = release(s, entry_id, "bob@example.org", domain="lists.test")
                bob.append(f"released: {result.status}")
        except LookupError as exc:
            bob.append(str(exc))

    with transaction(pg_db) as session:
        assert release(session, entry_id, "ann@example.org", domain="lists.test").message_pk
        other = threading.Thread(target=bob_releases)
        other.start()
        waiting_for_ann(pg_db, other)
    other.join(timeout=30)
    assert not other.is_alive()
    assert bob == [f"entry {entry_id} was already released by ann@example.org"], bob
    with pg_db() as session:
        assert session.get_one(NotPosted, entry_id).released_by == "ann@example.org"
        assert session.scalar(select(func.count()).select_from(Message)) == 1
        fanouts = select(func.count()).select_from(OutboxEntry)
        assert session.scalar(fanouts.where(OutboxEntry.kind == dispatch.FANOUT)) == 1
