"""New threads in one archiving batch, on SQLite and PostgreSQL: their rows go in with the batch's
others (ids taken ahead, no INSERT … RETURNING per thread), and what the archive shows of them
(counts, participants, roots, merges of threads started in the same batch) is what it was.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate.models import Message, Thread, ThreadParticipant
from tests.support.batches import archive, archive_with_dev, raw


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """A writing session factory of a fresh archive with the list dev."""
    return archive_with_dev(request)


def test_a_batch_of_new_threads_writes_their_rows_together_and_shows_them_right(
    db: sessionmaker[Session],
) -> None:
    # 1..12 start threads; 14 answers 13, which is not there yet (a placeholder and a thread of
    # its own), then 13 answers 1: the two threads started in this batch merge into 1's
    raws = [raw(n, f"p{n % 3}") for n in range(1, 13)]
    raws += [raw(14, "q", reply_to=13), raw(13, "r", reply_to=1), raw(15, "p1", reply_to=2)]
    statements = archive(db, raws)

    inserts = [s for s in statements if s.startswith("INSERT INTO threads")]
    assert len(inserts) <= 2, f"one INSERT per new thread: {len(inserts)}"
    assert not [s for s in inserts if "RETURNING" in s]
    with db() as s:
        shown = {
            t.id: (t.message_count, t.participant_count, t.subject, t.merged_into_id)
            for t in s.scalars(select(Thread).order_by(Thread.id))
        }
        by_msgid = {m.message_id: (m.id, m.thread_id) for m in s.scalars(select(Message))}
        people = {(p.thread_id, p.address) for p in s.scalars(select(ThreadParticipant))}
    first = by_msgid["m1@example.org"][1]
    assert by_msgid["m13@example.org"][1] == by_msgid["m14@example.org"][1] == first
    assert shown[first][:3] == (3, 3, "topic 1")
    assert shown[by_msgid["m2@example.org"][1]][:3] == (2, 2, "topic 2")
    live = {t for t, (count, _, _, merged) in shown.items() if merged is None and count}
    assert live == {by_msgid[f"m{n}@example.org"][1] for n in range(1, 13)}  # 14's merged away
    assert {(first, f"{a}@example.org") for a in ("p1", "q", "r")} <= people
    assert len([p for p in people if p[0] == first]) == 3


def test_threads_started_by_the_next_batch_take_the_next_ids(db: sessionmaker[Session]) -> None:
    archive(db, [raw(1, "a"), raw(2, "b")])
    archive(db, [raw(3, "c"), raw(4, "d", reply_to=3)])
    with db() as s:
        ids = [t.id for t in s.scalars(select(Thread).order_by(Thread.id))]
        counts = {t.subject: t.message_count for t in s.scalars(select(Thread))}
    assert len(ids) == len(set(ids)) == 3
    assert counts == {"topic 1": 1, "topic 2": 1, "topic 3": 2}


def test_threads_started_in_a_batch_go_in_with_their_counts_and_no_update(
    db: sessionmaker[Session],
) -> None:
    # 1..6 start threads, 7..9 answer 1, 2 and 7: nothing moves a thread, so each new thread's
    # row can take the counts its posts gave it before it is written
    raws = [raw(n, f"p{n}") for n in range(1, 7)]
    raws += [raw(7, "q", reply_to=1), raw(8, "p2", reply_to=2), raw(9, "r", reply_to=7)]
    statements = archive(db, raws)

    updates = [s for s in statements if s.startswith("UPDATE threads")]
    assert not updates, f"the new threads' rows updated after they went in: {updates}"
    with db() as s:
        shown = {
            t.subject: (
                t.message_count,
                t.participant_count,
                t.created_at.minute,
                t.last_activity.minute,
                t.root_message_pk is not None,
            )
            for t in s.scalars(select(Thread))
        }
    assert shown["topic 1"] == (3, 3, 1, 9, True)
    assert shown["topic 2"] == (2, 1, 2, 8, True)
    assert shown["topic 6"] == (1, 1, 6, 6, True)
    assert len(shown) == 6
