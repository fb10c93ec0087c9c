"""The archiving path's cost per message, deterministic: SQL statements per message, and a profile.

`python -m bench.import_cost --messages 2000` imports the first messages of linux-man in this
process (the ingest path `listgate import` and the archiver share) into a fresh archive and
prints statements per message by kind; `--profile FILE` also writes a cProfile of the run, timed
in this process's CPU seconds (the first batch is parsed here, the rest by the import's parsing
process, whose time is not in it). `--postgresql`
(or `--database-url`) runs it on PostgreSQL. `--smtp` takes the live path instead: the messages
are spooled as the gateway spools a post to the list, and the archiver stage archives them in its
batches (SMTP origin: a follow of the thread and an outbox entry per post, which an import skips).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.common import Context, listgate_env
from bench.corpora import linux_man
from bench.services import postgres


def _count_statements(engine: Any) -> collections.Counter[str]:
    """A counter of statements run on engine, by their first word (one per executemany)."""
    seen: collections.Counter[str] = collections.Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, _many: bool) -> None:
        seen[statement.lstrip().split(None, 1)[0].upper()] += 1

    return seen


def _import(factory: Any, settings: Any, raws: list[bytes]) -> int:
    """`listgate import`'s path: how many were imported."""
    from listgate.importer import Importer

    importer = Importer(factory, "cost", settings.domain, batch=500)
    importer.run(iter(raws))
    return importer.summary.imported


def _spool(engine: Any, settings: Any, raws: list[bytes]) -> Any:
    """The messages spooled as the gateway spools posts to the list (before counting)."""
    from listgate.mail.parser import parse_message_id
    from listgate.spool import Spool, Spooled

    spool = Spool(engine)
    to = (f"cost@{settings.domain}",)
    for start in range(0, len(raws), 500):
        spool.append(
            [
                Spooled(r, "poster@example.org", to, parse_message_id(r))
                for r in raws[start : start + 500]
            ]
        )
    return spool


def _archive_spool(factory: Any, settings: Any, spool: Any) -> int:
    """The archiver stage's path (batches of 20, as `python -m gateway --archiver-only`)."""
    from listgate.archiver import Archiver
    from listgate.db import session_factory

    archiver = Archiver(
        settings, factory, read_factory=session_factory(spool.main), spool=spool, batch=20
    )
    done = archiver.drain(timeout=3600)
    spool.close()
    return done


def measure(
    messages: int, database_url: str, profile: Path | None, smtp: bool = False
) -> dict[str, Any]:
    """Archive the first `messages` of linux-man in-process; statements and seconds."""
    from listgate import lists
    from listgate.config import Settings
    from listgate.db import make_engine, session_factory, transaction, writer
    from listgate.importer import mbox_messages, parse_all
    from listgate.schema import upgrade

    data_dir = Path(tempfile.mkdtemp(prefix="listgate-import-cost-"))
    extra = {"LISTGATE_DATABASE_URL": database_url} if database_url else {}
    settings = Settings.from_env(listgate_env(data_dir, **extra))
    engine = make_engine(settings)
    upgrade(engine)
    factory = session_factory(writer(engine))
    with transaction(factory) as session:
        lists.create(session, "cost", "Import cost", "")
    with open(linux_man(messages), "rb") as mbox:
        raws = list(itertools.islice(mbox_messages(mbox), messages))
    parse_all(raws[:1])  # load the body decoder before timing
    spool = _spool(engine, settings, raws) if smtp else None
    seen = _count_statements(engine)
    # process time, not the wall clock: other work on the machine and the waits for the parsing
    # process would count as this code's time
    profiler = cProfile.Profile(time.process_time) if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    done = _archive_spool(factory, settings, spool) if spool else _import(factory, settings, raws)
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    total = sum(seen.values())
    return {
        "messages": len(raws),
        "imported": done,
        "seconds": seconds,
        "cpu": cpu,
        "statements": total,
        "per_message": total / max(len(raws), 1),
        "by_kind": dict(seen.most_common()),
    }


def main() -> None:
    """Print statements per message (and seconds) of an in-process import of linux-man."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="first N linux-man messages")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument(
        "--postgresql", action="store_true", help="on a throwaway PostgreSQL cluster of its own"
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the import here")
    parser.add_argument(
        "--smtp", action="store_true", help="spool them as posts and run the archiver stage"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="listgate-import-cost-"))
    workdir.chmod(0o755)  # PostgreSQL's own user reaches its cluster inside
    ctx = Context(workdir, True, 1)
    with ctx.stack:
        url = postgres(ctx) if args.postgresql else args.database_url
        result = measure(args.messages, url, args.profile, args.smtp)
    done, parsing = (
        ("archived from the spool", "") if args.smtp else ("imported", ", parsing aside")
    )
    lines = [
        f"{result['imported']}/{result['messages']} {done} in {result['seconds']:.1f} s"
        f" ({result['cpu']:.1f} CPU-s in this process{parsing}); "
        f"{result['statements']} statements, {result['per_message']:.2f} per message"
    ]
    lines += [
        f"  {kind:<10} {n / max(result['messages'], 1):6.2f} per message"
        for kind, n in result["by_kind"].items()
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
