"""The archiver tells its pace (gateway.__main__.SessionPriority) when the spool outgrows it:
more mail spooled during a full batch than the batch took. Caught up, or shrinking, it does not;
every spooled message is archived either way."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import counters
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.models import Message
from listgate.spool import Spool, Spooled
from tests.support.batches import site_with_dev


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest) -> tuple[Settings, sessionmaker[Session]]:
    """(settings, writing session factory) of a fresh archive with the open list dev."""
    return site_with_dev(request)


def _spool(spool: Spool, first: int, n: int) -> None:
    spool.append(
        [
            Spooled(
                f"From: ann@example.org\r\nSubject: pace {i}\r\n"
                f"Message-ID: <pace-{i}@example.org>\r\n\r\nbody {i}\r\n".encode(),
                "ann@example.org",
                ("dev@lists.test",),
                f"<pace-{i}@example.org>",
                ((counters.RECEIVED, "", 1),),
            )
            for i in range(first, first + n)
        ]
    )


def test_the_archiver_says_when_the_spool_outgrows_it(
    site: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, db = site
    told: list[bool] = []
    spool = Spool(db.kw["bind"])
    try:
        archiver = Archiver(settings, db, spool=spool, batch=10, pace=told.append)
        _spool(spool, 0, 25)
        taken = [archiver.archive_once()]  # 25 came, 10 taken: 15 behind
        _spool(spool, 25, 30)
        taken.append(archiver.archive_once())  # 30 more came, 10 taken: 35 behind
        while taken[-1]:
            taken.append(archiver.archive_once())  # nothing comes: 25, 15, 5 behind, caught up
    finally:
        spool.close()
    assert taken == [10, 10, 10, 10, 10, 5, 0]
    assert told == [True, True, False, False, False, False, False]
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 55
