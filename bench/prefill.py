"""Fill a list with N archived messages quickly, by bulk inserts shaped like what ingest stores.

Used only to give the threading benchmark a big list in seconds instead of hours: every
row ingest would write (raw bytes, message, thread, thread nodes, reference chain,
participants) is written, so indexes and tables are as large as after a real import.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.archive import Archive
from bench.common import NotAvailable

log = logging.getLogger(__name__)
PREFILL_VERSION = 3  # bump when the rows written here change
THREAD_SIZE = 5  # root and four replies, each answering the one before
BATCH = 5000
WORDS = [
    "kernel",
    "memory",
    "page",
    "patch",
    "buffer",
    "driver",
    "lock",
    "signal",
    "socket",
    "timer",
    "queue",
    "cache",
    "mount",
    "path",
]


def _bodies(n: int = 997) -> list[str]:
    """n message bodies drawn from the generator's vocabulary with Zipf-like word frequencies."""
    import random

    from bench.generate import WORDS as VOCABULARY

    rng = random.Random(42)
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    shuffled = list(VOCABULARY)
    rng.shuffle(shuffled)  # which words are common is arbitrary, but fixed
    return [" ".join(rng.choices(shuffled, weights, k=40)) for _ in range(n)]


def prefill_msgid(i: int) -> str:
    """The Message-ID of the i-th prefilled message."""
    return f"pre{i}@prefill.bench.test"


def prefill(archive: Archive, count: int, progress: bool = True) -> None:
    """Insert count messages (count // THREAD_SIZE threads) into the archive's list."""
    from sqlalchemy import func, select, update

    from listgate.models import (
        MailingList,
        Message,
        MessageRef,
        RawMessage,
        Thread,
        ThreadNode,
        ThreadParticipant,
    )
    from listgate.store import table

    engine = archive.engine()
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                # a bigger page cache keeps index inserts in memory: 1M rows go in minutes, not
                # an hour
                conn.exec_driver_sql("PRAGMA cache_size=-1048576")
            list_id = conn.execute(
                select(MailingList.id).where(MailingList.name == archive.list_name)
            ).scalar_one()
            base_raw = conn.execute(select(func.coalesce(func.max(RawMessage.id), 0))).scalar_one()
            base_msg = conn.execute(select(func.coalesce(func.max(Message.id), 0))).scalar_one()
            base_thread = conn.execute(select(func.coalesce(func.max(Thread.id), 0))).scalar_one()
            bar = _bar(count, progress)
            bodies = _bodies()
            for start in range(0, count, BATCH):
                rows = _batch(
                    list_id,
                    start,
                    min(count, start + BATCH),
                    base_raw,
                    base_msg,
                    base_thread,
                    bodies,
                )
                for model in (
                    RawMessage,
                    Thread,
                    Message,
                    ThreadNode,
                    MessageRef,
                    ThreadParticipant,
                ):
                    if rows[model.__tablename__]:
                        conn.execute(table(model).insert(), rows[model.__tablename__])
                bar.update(min(BATCH, count - start))
            bar.close()
            conn.execute(
                update(MailingList)
                .where(MailingList.id == list_id)
                .values(
                    message_count=MailingList.message_count + count,
                    thread_count=MailingList.thread_count
                    + (count + THREAD_SIZE - 1) // THREAD_SIZE,
                )
            )
    except Exception as exc:  # noqa: BLE001 - the schema moved under us: say so on the row
        raise NotAvailable(
            f"bulk prefill no longer matches the schema: {type(exc).__name__}: {exc}"[:300]
        ) from None
    finally:
        engine.dispose()


def _bar(count: int, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=count, unit="msg", desc=f"prefill {count}", disable=not progress, mininterval=1.0
    )


def _batch(
    list_id: int,
    lo: int,
    hi: int,
    base_raw: int,
    base_msg: int,
    base_thread: int,
    bodies: list[str],
) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {
        t: []
        for t in (
            "raw_messages",
            "threads",
            "messages",
            "thread_nodes",
            "message_refs",
            "thread_participants",
        )
    }
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    for i in range(lo, hi):
        t, pos = divmod(i, THREAD_SIZE)
        msg_pk, thread_pk = base_msg + i + 1, base_thread + t + 1
        date = epoch + timedelta(minutes=7 * i)
        subject = " ".join(WORDS[(t * k + k) % len(WORDS)] for k in range(1, 5)) + f" {t}"
        author = f"author{i % 997}@example.org"
        raw = (
            f"Message-ID: <{prefill_msgid(i)}>\nSubject: {subject}\nFrom: {author}\n\n"
            f"prefilled body {i} " + bodies[i % len(bodies)]
        ).encode()
        rows["raw_messages"].append(
            {
                "id": base_raw + i + 1,
                "sha256": hashlib.sha256(raw).hexdigest(),
                "size": len(raw),
                "data": raw,
                "received_at": date,
            }
        )
        chain = [prefill_msgid(t * THREAD_SIZE + k) for k in range(pos)]
        if pos == 0:
            rows["threads"].append(
                {
                    "id": thread_pk,
                    "list_id": list_id,
                    "subject": subject,
                    "subject_norm": subject.lower(),
                    "root_message_pk": msg_pk,
                    "starter_name": author.split("@")[0],
                    "created_at": date,
                    "message_count": min(THREAD_SIZE, hi - i),
                    "participant_count": min(THREAD_SIZE, hi - i),
                    "last_activity": date + timedelta(minutes=7 * (THREAD_SIZE - 1)),
                }
            )
        rows["messages"].append(
            {
                "id": msg_pk,
                "list_id": list_id,
                "message_id": prefill_msgid(i),
                "thread_id": thread_pk,
                "parent_id": msg_pk - 1 if pos else None,
                "pref_parent_id": msg_pk - 1 if pos else None,
                "parent_pos": pos - 1,
                "raw_id": base_raw + i + 1,
                "subject": ("Re: " if pos else "") + subject,
                "subject_norm": subject.lower(),
                "from_name": author.split("@")[0],
                "from_addr": author,
                "date": date,
                "received_at": date,
                "in_reply_to": chain[-1] if chain else "",
                "references": " ".join(chain),
                "body_text": raw.split(b"\n\n", 1)[1].decode(),
                "status": "visible",
                "origin": "import",
            }
        )
        rows["thread_nodes"].append(
            {
                "list_id": list_id,
                "msgid": prefill_msgid(i),
                "thread_id": thread_pk,
                "message_pk": msg_pk,
            }
        )
        rows["message_refs"].extend(
            {
                "message_pk": msg_pk,
                "position": p,
                "list_id": list_id,
                "ref": ref,
                "in_reply_to": int(p == pos - 1),
            }
            for p, ref in enumerate(chain)
        )
        rows["thread_participants"].append({"thread_id": thread_pk, "address": author})
    return rows


def reply_targets(count: int, n: int, seed: int = 7) -> Iterator[tuple[str, list[str]]]:
    """n (parent msgid, references) pairs spread over a prefilled list of count messages."""
    import random

    rng = random.Random(seed)
    for _ in range(n):
        i = rng.randrange(count)
        t, pos = divmod(i, THREAD_SIZE)
        chain = [prefill_msgid(t * THREAD_SIZE + k) for k in range(pos + 1)]
        yield chain[-1], chain
