"""The archiver's pace look-up failing after a batch committed: the batch stays archived, its
outbox entries are still handed on, and the archiver goes on at its normal weight."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import counters, lists
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Message
from listgate.spool import Spool, Spooled


class _Unreadable(Spool):
    """A spool whose newest id cannot be read (a database gone between two statements)."""

    def newest(self) -> int:
        raise OSError("the spool cannot be read now")


def test_a_failed_pace_look_up_fails_nothing(settings: Settings, db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        lists.create(s, "dev")
    spool = _Unreadable(db.kw["bind"])
    told: list[bool] = []
    handed: list[int] = []
    try:
        spool.append(
            [
                Spooled(
                    b"From: ann@example.org\r\nMessage-ID: <u%d@example.org>\r\n\r\nx\r\n" % i,
                    "ann@example.org",
                    ("dev@lists.test",),
                    f"<u{i}@example.org>",
                    ((counters.RECEIVED, "", 1),),
                )
                for i in range(3)
            ]
        )
        archiver = Archiver(
            settings,
            db,
            spool=spool,
            batch=2,
            pace=told.append,
            enqueue=lambda entries: handed.append(len(entries)),
        )
        taken = [archiver.archive_once(), archiver.archive_once(), archiver.archive_once()]
    finally:
        spool.close()
    assert taken == [2, 1, 0]
    assert told == [False, False, False]
    assert archiver.pause == 0.0
    assert len(handed) == 2  # each batch's outbox entries, after its commit
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 3
