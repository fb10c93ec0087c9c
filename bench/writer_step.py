"""The gateway's group-writer step alone: the time to decide and spool one batch, with no load.

`python -m bench.writer_step [--postgresql] [--batch 3] [--batches 1500] [--profile FILE]` makes
a fresh archive (SQLite; with --postgresql also a throwaway PostgreSQL) and hands the writer's step
(gateway.answers.Answerer, as the gateway's writer thread calls it) batches of --batch fresh
4 KB posts (the load benchmarks') to one open list, then prints per batch the mean wall time and
the CPU time of this thread: the whole step, the batch's look-ups (`Answerer._admit`) and the
spool's append (its commit: one fsync on SQLite at synchronous=FULL, the WAL flush on
PostgreSQL); on PostgreSQL also the server's CPU per batch (the server's processes, its backends
and background workers, user+system from /proc, in 10 ms ticks). Nothing else runs: this is the
cycle's floor, which the load benchmarks' clients and archiver then share the cores with.

--behind: each batch begun with the one before it behind (`Answerer.begin`), as the gateway's
writer does while clients wait: the batch before's append goes with this batch's look-ups (on
PostgreSQL in one round trip); the step is then one `begin` a batch. --trace (PostgreSQL): libpq's
trace of the look-ups' connections, and the round trips (ReadyForQuery) per timed batch.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.archive import make_archive
from bench.common import Context, scratch
from bench.services import postgres
from bench.smtp_load import make_post
from gateway.answers import Answer, Answerer, Arrival
from listgate.db import make_engine
from listgate.spool import Spool, Spooled

WARM_UP = 200  # batches before the timing (statement caches, prepared statements)


def _timed(spent: list[tuple[float, float]], fn: Any) -> Any:
    """fn, its (wall, thread CPU) seconds per call added to spent."""

    def wrapper(*args: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args)
        finally:
            spent.append((time.perf_counter() - started, time.thread_time() - cpu))

    return wrapper


def server_cpu(ctx: Context) -> float:
    """CPU seconds (user+system) the run's PostgreSQL cluster has used: its postmaster and every
    process it started (backends, WAL writer, checkpointer...), by the kernel's counts."""
    data = ctx.path("postgres", "data", "postmaster.pid")
    postmaster = int(data.read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    spent = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process just ended
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            spent += int(fields[11]) + int(fields[12])
    return spent / tick


def _means(spent: list[tuple[float, float]]) -> str:
    """Mean wall and CPU per call, in ms (none: in the step's one round trip, --behind)."""
    if not spent:
        return "none apart"
    wall = 1000 * sum(w for w, _ in spent) / len(spent)
    return f"{wall:.3f} ms (CPU {1000 * sum(c for _, c in spent) / len(spent):.3f})"


def measure(
    ctx: Context,
    pg: bool,
    size: int,
    batches: int,
    profile_to: str = "",
    behind: bool = False,
    trace: bool = False,
) -> str:
    """One line: the mean step (and its CPU in this process), look-ups and append per batch of
    `size` posts, in ms; with profile_to, the timed step's cProfile stats go to that file."""
    # durable: the spool's commit before a 250 waits for the WAL flush, as in live_ingest
    archive = make_archive(ctx, "writer-step", postgres(ctx, durable=True) if pg else "")
    engine = make_engine(archive.settings)
    spool = Spool(engine)
    step = Answerer(archive.settings, engine, spool)
    looked: list[tuple[float, float]] = []
    appended: list[tuple[float, float]] = []
    step._admit = _timed(looked, step._admit)  # type: ignore[method-assign]
    spool.append = _timed(appended, spool.append)  # type: ignore[method-assign]
    traced = ctx.path(f"libpq-trace-{os.getpid()}-{time.monotonic_ns()}")
    if pg and trace:
        _trace(step.read, traced)
    waiting: Any = None

    def run(one: list[Arrival | Spooled]) -> list[Any]:
        """One batch as the writer takes it: whole, or begun with the one before behind."""
        nonlocal waiting
        if not behind:
            return step(one)
        done, waiting = step.begin(one, waiting)
        return done

    to = archive.address
    sent = 0

    def jobs(count: int) -> list[list[Arrival | Spooled]]:
        """count batches of fresh posts (the load benchmarks'), made before the timing."""
        nonlocal sent
        made: list[list[Arrival | Spooled]] = []
        for _ in range(count):
            made.append([])
            for _ in range(size):
                sent += 1
                _msgid, raw = make_post(to, f"step{sent}")
                made[-1].append(Arrival(raw, "poster@example.org", (to,)))
        return made

    try:
        for one in jobs(WARM_UP):
            run(one)
        looked.clear()
        appended.clear()
        timed = jobs(batches)
        profile = cProfile.Profile(time.thread_time) if profile_to else None
        server = server_cpu(ctx) if pg else 0.0
        trips: float = _trips(traced)
        started, cpu = time.perf_counter(), time.thread_time()
        if profile:
            profile.enable()
        for one in timed:
            results = run(one)
        if profile:
            profile.disable()
            profile.dump_stats(f"{profile_to}.{'postgresql' if pg else 'sqlite'}")
        whole = (time.perf_counter() - started) / batches
        cpu = (time.thread_time() - cpu) / batches
        server = (server_cpu(ctx) - server) / batches if pg else 0.0
        trips = (_trips(traced) - trips) / batches
        spent = _means(looked), _means(appended)
        if not all(isinstance(r, Answer) and r.problem is None for r in results):
            raise SystemExit(f"the step did not accept the posts: {results}")
    finally:
        if waiting is not None:
            step.finish(waiting)
        spool.close()
        engine.dispose()
    return (
        f"{'postgresql' if pg else 'sqlite'}, batches of {size}: step {1000 * whole:.3f} ms"
        f" (CPU {1000 * cpu:.3f} ms),"
        f" look-ups {spent[0]}, append {spent[1]}"
        + (f", server CPU {1000 * server:.3f} ms" if pg else "")
        + (f", round trips {trips:.2f}" if pg and trace else "")
        + (" (each begun with the one before behind)" if behind else "")
    )


def _trace(engine: Any, to: Path) -> None:
    """libpq's trace of each new connection of engine, appended to the file `to`."""
    from psycopg import pq
    from sqlalchemy import event

    files = []

    def _connect(dbapi_conn: Any, _record: Any) -> None:
        out = open(to, "a")  # noqa: SIM115 - open while the connection lives
        files.append(out)
        dbapi_conn.pgconn.trace(out.fileno())
        dbapi_conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    event.listen(engine, "connect", _connect)


def _trips(traced: Path) -> int:
    """Round trips in the trace so far: the server's ReadyForQuery, one per Sync."""
    if not traced.exists():
        return 0
    with open(traced) as f:
        return sum("ReadyForQuery" in line for line in f)


def main() -> None:
    """Time the writer's step and print one line per database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgresql", action="store_true", help="also on a throwaway PostgreSQL")
    parser.add_argument("--batch", type=int, default=3, help="posts per batch")
    parser.add_argument("--batches", type=int, default=1500, help="batches timed")
    parser.add_argument(
        "--profile",
        default="",
        help="cProfile stats (this thread's CPU time) to FILE.sqlite/.postgresql",
    )
    parser.add_argument(
        "--behind", action="store_true", help="each batch begun with the one before behind"
    )
    parser.add_argument("--trace", action="store_true", help="PostgreSQL: round trips per batch")
    args = parser.parse_args()
    with scratch("listgate-writer-step-") as ctx:
        lines = [measure(ctx, False, args.batch, args.batches, args.profile, args.behind)]
        if args.postgresql:
            lines.append(
                measure(ctx, True, args.batch, args.batches, args.profile, args.behind, args.trace)
            )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
