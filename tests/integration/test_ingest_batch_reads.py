"""What one archiving batch reads and writes, on SQLite and PostgreSQL: the threads its replies join
read in one query, the subject fallback choosing among the batch's rows still waiting to be
written (without writing them early), a placeholder the batch wrote filled in where it waits;
and the archive they make is what it was.
"""

from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate.models import Attachment, Blob, Message, Thread, ThreadNode
from tests.support.batches import archive, archive_with_dev, raw


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """A writing session factory of a fresh archive with the list dev."""
    return archive_with_dev(request)


def _placed(db: sessionmaker[Session]) -> dict[str, tuple[str | None, int, bool]]:
    """Each message's (parent's Message-ID, thread, joined by subject)."""
    with db() as s:
        rows = s.execute(
            select(
                Message.id,
                Message.message_id,
                Message.parent_id,
                Message.thread_id,
                Message.by_subject,
            )
        ).all()
    ids = {r.id: r.message_id for r in rows}
    return {
        r.message_id: (ids.get(r.parent_id) if r.parent_id else None, r.thread_id, r.by_subject)
        for r in rows
    }


def test_the_threads_a_batch_s_replies_join_are_read_in_one_query(
    db: sessionmaker[Session],
) -> None:
    archive(db, [raw(n, f"p{n}") for n in range(1, 9)])
    # the next batch answers each of the eight threads, two of them twice
    replies = [raw(10 + n, f"q{n}", reply_to=n) for n in range(1, 9)]
    replies += [raw(20, "p1", reply_to=11), raw(21, "r", reply_to=2)]
    statements = archive(db, replies)

    reads = [s for s in statements if re.match(r"SELECT .* FROM threads\b", s)]
    assert len(reads) <= 1, f"the threads replies join read one by one: {len(reads)} SELECTs"
    with db() as s:
        shown = {
            t.subject: (t.message_count, t.participant_count)
            for t in s.scalars(select(Thread).where(Thread.merged_into_id.is_(None)))
        }
    assert shown == {
        "topic 1": (3, 2),  # p1 answers in its own thread: one participant more than one
        "topic 2": (3, 3),
        **{f"topic {n}": (2, 2) for n in range(3, 9)},
    }
    placed = _placed(db)
    assert placed["m20@example.org"][0] == "m11@example.org"
    assert placed["m21@example.org"][0] == "m2@example.org"


def test_the_subject_fallback_chooses_among_the_batch_s_waiting_rows_without_writing_them(
    db: sessionmaker[Session],
) -> None:
    archive(db, [raw(1, "a", subject="plans", minute=1)])  # written: the earliest
    batch = [
        raw(2, "b", subject="Re: plans", minute=5),  # under 1 (written)
        raw(3, "c", subject="Re: plans", minute=9),  # under 2 (waiting)
        raw(4, "d", subject="Re: plans", minute=9),  # the same Date as 3: 3 is before it
        raw(6, "f", subject="other", minute=21),
    ]
    statements = archive(db, batch)

    written = [s for s in statements if s.startswith("INSERT INTO messages ")]
    assert len(written) == 1, f"the batch's messages rows were written in {len(written)} parts"
    # 5 names 7 (so it is none of 7's parents) and waits with it; 4 was written
    archive(
        db,
        [
            raw(5, "e", reply_to=7, subject="Re: plans", minute=20),
            raw(7, "g", subject="Re: plans", minute=25),
        ],
    )
    placed = _placed(db)
    parents = {m: p for m, (p, _, _) in placed.items()}
    assert parents == {
        "m1@example.org": None,
        "m2@example.org": "m1@example.org",
        "m3@example.org": "m2@example.org",
        "m4@example.org": "m3@example.org",
        "m5@example.org": "m7@example.org",
        "m6@example.org": None,
        "m7@example.org": "m4@example.org",
    }
    threads = {t for m, (_, t, _) in placed.items() if m != "m6@example.org"}
    assert len(threads) == 1
    with db() as s:
        (count,) = s.execute(select(Thread.message_count).where(Thread.id == threads.pop())).one()
    assert count == 6


def test_a_placeholder_waiting_in_the_batch_is_filled_in_where_it_waits(
    db: sessionmaker[Session],
) -> None:
    # 2 answers 1 before 1 comes, in the same batch: 1's node is a placeholder 2 left waiting
    statements = archive(db, [raw(2, "b", reply_to=1), raw(1, "a"), raw(3, "c", reply_to=2)])

    fills = [s for s in statements if s.startswith("UPDATE thread_nodes")]
    assert not fills, f"the waiting placeholder was filled in by {len(fills)} UPDATE"
    with db() as s:
        nodes = {n.msgid: (n.message_pk, n.thread_id) for n in s.scalars(select(ThreadNode))}
        pks = dict(s.execute(select(Message.message_id, Message.id)).all())
    placed = _placed(db)
    assert {m: p for m, (p, _, _) in placed.items()} == {
        "m1@example.org": None,
        "m2@example.org": "m1@example.org",
        "m3@example.org": "m2@example.org",
    }
    (thread,) = {t for _, t, _ in placed.values()}
    assert nodes == {m: (pks[m], thread) for m in pks}


def _with_attachment(n: int, content: bytes) -> bytes:
    return (
        f"From: a{n}@example.org\r\nSubject: file {n}\r\n"
        f"Date: Tue, 01 Dec 2026 11:{n:02d}:00 +0000\r\nMessage-ID: <f{n}@example.org>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
        f"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
        f'filename="f{n}.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        f"{base64.b64encode(content).decode()}\r\n--b--\r\n"
    ).encode()


def test_a_batch_s_attachments_are_stored_together_once_per_content(
    db: sessionmaker[Session],
) -> None:
    archive(db, [_with_attachment(1, b"first")])
    # 2 brings 1's content again, 3 and 5 the same new one
    contents = {2: b"first", 3: b"shared", 4: b"own", 5: b"shared", 6: b"sixth"}
    statements = archive(db, [_with_attachment(n, c) for n, c in contents.items()])

    stored = [s for s in statements if re.match(r"INSERT (OR IGNORE )?INTO blobs\b", s)]
    assert len(stored) <= 1, f"the batch's attachments stored in {len(stored)} statements"
    with db() as s:
        blobs = dict(s.execute(select(Blob.sha256, Blob.data)).all())
        files = {
            a.filename: blobs[a.sha256]
            for a in s.scalars(select(Attachment).order_by(Attachment.message_pk))
        }
    assert sorted(blobs.values()) == sorted({b"first", *contents.values()})
    assert files == {"f1.bin": b"first", **{f"f{n}.bin": c for n, c in contents.items()}}


def test_after_a_merge_in_a_batch_its_new_ids_are_not_looked_up_again(
    db: sessionmaker[Session],
) -> None:
    archive(db, [raw(1, "a"), raw(2, "b")])
    merging = (  # 3 answers both: their threads merge, and what the batch knew of ids moved
        b"From: c@example.org\r\nSubject: Re: topic 1\r\n"
        b"Date: Tue, 01 Dec 2026 10:03:00 +0000\r\nMessage-ID: <m3@example.org>\r\n"
        b"In-Reply-To: <m1@example.org>\r\nReferences: <m2@example.org> <m1@example.org>\r\n"
        b"\r\nBoth.\r\n"
    )
    statements = archive(db, [merging, *(raw(n, f"p{n}") for n in range(4, 10))])

    asked = [s for s in statements if re.match(r"SELECT .* FROM messages WHERE .*message_id IN", s)]
    # the batch's look-ahead asks once for all of them
    assert len(asked) <= 1, f"ids known to be new were looked up again: {len(asked)} SELECTs"
    placed = _placed(db)
    assert placed["m3@example.org"][1] == placed["m1@example.org"][1] == placed["m2@example.org"][1]
    assert len({t for _, t, _ in placed.values()}) == 7
    with db() as s:
        counts = sorted(
            t.message_count
            for t in s.scalars(select(Thread).where(Thread.merged_into_id.is_(None)))
        )
    assert counts == [1, 1, 1, 1, 1, 1, 3]
