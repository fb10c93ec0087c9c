"""The archiving path's cost per message, deterministic: SQL statements per message, and a profile.

`python -m bench.import_cost --messages 2000` imports the first messages of linux-man in this
process (the ingest path `listgate import` and the archiver share) into a fresh archive and
prints statements per message by kind; `--profile FILE` also writes a cProfile of the run
(the first batch is parsed here, the rest by the import's parsing process). `--postgresql`
(or `--database-url`) runs it on PostgreSQL.
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


def measure(messages: int, database_url: str, profile: Path | None) -> dict[str, Any]:
    """Import the first `messages` of linux-man in-process; statements and seconds."""
    from listgate import lists
    from listgate.config import Settings
    from listgate.db import make_engine, session_factory, transaction, writer
    from listgate.importer import Importer, mbox_messages, parse_all
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
    seen = _count_statements(engine)
    importer = Importer(factory, "cost", settings.domain, batch=500)
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    importer.run(iter(raws))
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    total = sum(seen.values())
    return {
        "messages": len(raws),
        "imported": importer.summary.imported,
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
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="listgate-import-cost-"))
    workdir.chmod(0o755)  # PostgreSQL's own user reaches its cluster inside
    ctx = Context(workdir, True, 1)
    with ctx.stack:
        url = postgres(ctx) if args.postgresql else args.database_url
        result = measure(args.messages, url, args.profile)
    lines = [
        f"{result['imported']}/{result['messages']} imported in {result['seconds']:.1f} s"
        f" ({result['cpu']:.1f} CPU-s in this process, parsing aside); "
        f"{result['statements']} statements, {result['per_message']:.2f} per message"
    ]
    lines += [
        f"  {kind:<10} {n / max(result['messages'], 1):6.2f} per message"
        for kind, n in result["by_kind"].items()
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
