"""The archiver's batch is bounded by bytes as well as by count: a batch of large messages takes
fewer of them, and a message larger than the whole budget is archived alone, never left behind."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.models import Message, SpooledMail
from tests.support.factories import MakeList
from tests.support.gateway import through_hooks

KB = 1024
# raw sizes in KB (plus ~80 bytes of header each) against a budget of 1,000 KB: three of 300 fit,
# the fourth waits for the next batch, 2,500 KB goes alone, the two small ones after it together
SIZES = (300, 300, 300, 300, 2500, 100, 100)
TAKEN = [3, 1, 1, 2]


def spool_posts(handler: GatewayHandler, sizes: tuple[int, ...] = SIZES) -> list[str]:
    """Post messages of these sizes (KB of body) to dev@; their Message-IDs, in order."""
    ids = []
    for n, size in enumerate(sizes):
        line = f"line of post {n} ".ljust(78, "x") + "\r\n"
        body = line * (size * KB // len(line))
        raw = (
            f"From: ann@example.org\r\nSubject: big {n}\r\nMessage-ID: <big{n}@x>\r\n\r\n{body}"
        ).encode()
        assert through_hooks(handler, raw, "ann@example.org", ["dev@lists.test"]).endswith("stored")
        ids.append(f"big{n}@x")
    return ids


def archive_in_rounds(archiver: Archiver) -> list[int]:
    """Archive until nothing is left; the rows each round took."""
    taken = []
    while done := archiver.archive_once():
        taken.append(done)
    assert not archiver.pause, "no round failed"
    return taken


def test_a_batch_holds_no_more_bytes_than_the_budget_and_a_larger_message_goes_alone(
    settings: Settings, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    bounded = settings.with_(archiver_batch_bytes=1000 * KB)
    ids = spool_posts(GatewayHandler(bounded, db))
    archiver = Archiver(bounded, db, enqueue=lambda _: 0, batch=20)
    assert archive_in_rounds(archiver) == TAKEN
    with db() as s:
        assert Counter(s.scalars(select(Message.message_id))) == Counter(ids)
        assert s.scalars(select(SpooledMail.id)).all() == []
