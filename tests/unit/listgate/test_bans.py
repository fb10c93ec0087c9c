"""Bans are per list and per address, case-insensitive."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from listgate.bans import is_banned
from listgate.db import transaction
from listgate.models.web import Ban
from tests.support.factories import MakeList


def test_a_ban_applies_to_one_list_and_one_address(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    dev, ops = make_list("dev"), make_list("ops")
    with transaction(db) as session:
        session.add(Ban(list_id=dev.id, address="troll@example.org"))
    with db() as session:
        assert is_banned(session, dev.id, "Troll@Example.org")
        assert not is_banned(session, ops.id, "troll@example.org")
        assert not is_banned(session, dev.id, "friend@example.org")
        assert not is_banned(session, dev.id, "")
