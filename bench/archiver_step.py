"""The archiver stage alone: its rate, its CPU and its statements per post, on spooled mail.

`python -m bench.archiver_step [--postgresql] [--posts 3000] [--batch 100]` makes a fresh archive
(SQLite; with --postgresql also a throwaway PostgreSQL), spools --posts 4 KB posts through the
gateway's writer step (a third of them start a thread, the others answer it, as a list's mail
mostly does), then archives them with the archiver in batches of --batch and prints one line per
database: posts archived per second (wall), the archiver's own CPU per post (its process time,
not the database server's), and the statements it sent per post. Nothing else runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from sqlalchemy import event

from bench.archive import make_archive
from bench.common import Context, scratch
from bench.services import postgres
from bench.smtp_load import make_post
from gateway.answers import Answerer, Arrival
from listgate.archiver import BATCH, Archiver
from listgate.db import make_engine, session_factory, writer
from listgate.spool import Spool

REPLIES = 2  # answers spooled after each thread's first post


def measure(ctx: Context, pg: bool, posts: int, batch: int) -> str:
    """One line: the archiver's rate, CPU and statements per post on one database."""
    archive = make_archive(ctx, "archiver-step", postgres(ctx, durable=True) if pg else "")
    engine = make_engine(archive.settings)
    spool = Spool(engine)
    step, to = Answerer(archive.settings, engine, spool), archive.address
    try:
        for n in range(posts // (REPLIES + 1)):
            root, raw = make_post(to, f"a{n}")
            answers = [make_post(to, f"a{n}r{k}", reply_to=root)[1] for k in range(REPLIES)]
            step([Arrival(r, "poster@example.org", (to,)) for r in (raw, *answers)])
        archiver = Archiver(
            archive.settings,
            session_factory(writer(engine)),
            read_factory=session_factory(engine),
            spool=spool,
            batch=batch,
        )
        sent = [0]

        def count(*_: Any) -> None:
            sent[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        cpu, started = time.process_time(), time.perf_counter()
        done = archiver.drain(timeout=3600)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        spool.close()
        engine.dispose()
    if not done:
        raise SystemExit("the archiver archived nothing")
    return (
        f"{'postgresql' if pg else 'sqlite'}, {done} posts in batches of {batch}:"
        f" {done / wall:,.0f} posts/s, archiver CPU {1000 * cpu / done:.2f} ms/post,"
        f" {sent[0] / done:.1f} statements/post"
    )


def main() -> None:
    """Time the archiver and print one line per database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgresql", action="store_true", help="also on a throwaway PostgreSQL")
    parser.add_argument("--posts", type=int, default=3000, help="posts spooled, then archived")
    parser.add_argument("--batch", type=int, default=BATCH, help="posts per archiving batch")
    args = parser.parse_args()
    with scratch("listgate-archiver-step-") as ctx:
        lines = [measure(ctx, False, args.posts, args.batch)]
        if args.postgresql:
            lines.append(measure(ctx, True, args.posts, args.batch))
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
