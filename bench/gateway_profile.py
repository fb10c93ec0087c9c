"""Where a post's server time goes in the gateway, from the end of DATA to the 250.

`python -m bench.gateway_profile [--postgresql] [--clients 1,4] [--seconds 5]` starts the gateway
(`python -m gateway --no-archiver`, a separate archiver draining the spool, as `listgate up` runs
them; no archiver with --without-archiver) with timers around the steps of `handle_DATA` and a
sampler of every thread's stack, loads it over SMTP from this process with each number of
clients in turn, and prints the mean time per post of each step, the spool's group-commit
batches, the gateway's CPU per post (and during the load, the archiver's and the PostgreSQL
server's), and the functions the sampler found most often on the gateway's threads. Nothing in
the gateway changes: the timers are put around its functions by the `serve` entry point below.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.archive import make_archive
from bench.common import PYTHON, Context, scratch, wait_port
from bench.freshness import drained
from bench.procs import start_archiver
from bench.services import postgres
from bench.smtp_load import run_load

_SPANS: dict[str, list[float]] = collections.defaultdict(list)
_SAMPLES: collections.Counter[str] = collections.Counter()
_SELF: collections.Counter[str] = collections.Counter()
_STATEMENTS = [0]  # SQL statements sent since the last dump
_THREAD_CPU: dict[str, float] = {}  # CPU seconds per kind of thread at the last dump
LISTENER, ARCHIVER = "listener", "archiver"  # application_name of each process's connections
SAMPLE_EVERY = 0.002  # seconds between stack samples
# A thread whose top frame is one of these is idle (waiting for work), and not counted.
IDLE = {
    "selectors.py:select",
    "thread.py:_worker",
    "writer.py:next_batch",
    "threading.py:wait",
}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, its wall time per call added to _SPANS[name]."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _SPANS[name].append(time.perf_counter() - started)

    return wrapper


def _timed_async(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The coroutine function fn, its wall time per call added to _SPANS[name]."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            _SPANS[name].append(time.perf_counter() - started)

    return wrapper


def _instrument() -> None:
    """Timers around the steps between the end of DATA and the reply (gateway/handler.py,
    gateway/answers.py), and a count of the SQL statements the gateway runs."""
    from gateway import answers, handler
    from listgate.spool import Spool

    gh = handler.GatewayHandler
    gh.handle_DATA = _timed_async("DATA -> reply (handle_DATA)", gh.handle_DATA)  # type: ignore[method-assign]
    answers.shape_problem = _timed(
        "    shape/smuggling checks (writer thread)", answers.shape_problem
    )
    answers.parse_head = _timed("    header scan (parse_head, writer thread)", answers.parse_head)
    answers.admit_all = _timed(
        "    list, ban, duplicate, policy (admit_all, per batch)", answers.admit_all
    )
    gh._store = _timed_async("  writer: submit -> answered (_store)", gh._store)  # type: ignore[method-assign]
    Spool.append = _timed("    Spool.append (per batch, writer thread)", Spool.append)  # type: ignore[method-assign]
    begin = gh.begin_batch

    def batch(self: Any, jobs: list[Any], behind: Any) -> Any:
        _SPANS["group commit batch size"].append(float(len(jobs)))
        return begin(self, jobs, behind)

    gh.begin_batch = batch  # type: ignore[method-assign]
    _count_statements()


def _count_statements() -> None:
    """Count every SQL statement the gateway sends (BEGIN included, COMMIT not): through any
    engine, and the spool's appends on the driver's cursor (Spool.write_rows: BEGIN IMMEDIATE
    and the INSERT on SQLite, the INSERT alone on PostgreSQL; Spool.queue_append: the INSERT
    sent in the next batch's look-up round trip), and the share of appends sent that way."""
    from sqlalchemy import Engine, event

    from listgate.spool import Spool

    def count(*_: Any) -> None:
        _STATEMENTS[0] += 1

    event.listen(Engine, "before_cursor_execute", count)
    write_rows = Spool.write_rows

    def written(self: Spool, rows: Any, conn: Any = None, *, check: Any = None) -> bool:
        _STATEMENTS[0] += 1 if self.postgresql else 2
        return write_rows(self, rows, conn, check=check)

    queue_append = Spool.queue_append
    shared = "appends in the next batch's look-up round trip (share)"
    cached = "appends decided from the writer's fact cache (share)"
    stale = "of those, found stale and decided again (share)"

    def queued(self: Spool, conn: Any, mails: Any) -> None:
        _STATEMENTS[0] += 1
        _SPANS[shared].append(1.0)
        _SPANS[cached].append(0.0)
        queue_append(self, conn, mails)

    def alone(self: Spool, rows: Any, conn: Any = None, *, check: Any = None) -> bool:
        _SPANS[shared].append(0.0)
        _SPANS[cached].append(0.0 if check is None else 1.0)
        inserted = written(self, rows, conn, check=check)
        if check is not None:
            _SPANS[stale].append(0.0 if inserted else 1.0)
        return inserted

    Spool.queue_append = queued  # type: ignore[method-assign]
    Spool.write_rows = alone  # type: ignore[method-assign]


def _sample(stop: threading.Event) -> None:
    """Count each function on every other thread's stack (inclusive) and on top (self)."""
    me = threading.get_ident()
    while not stop.wait(SAMPLE_EVERY):
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            top = _where(frame)
            if top in IDLE:
                continue
            _SELF[top] += 1
            seen = set()
            f: Any = frame
            while f is not None:
                seen.add(_where(f))
                f = f.f_back
            _SAMPLES.update(seen)


def _where(frame: Any) -> str:
    code = frame.f_code
    path = code.co_filename
    short = path.split("site-packages/")[-1] if "site-packages" in path else Path(path).name
    return f"{short}:{code.co_name}"


def serve(out: Path, cpu_profile: Path | None = None) -> int:
    """`python -m bench.gateway_profile serve OUT [PSTATS]`: the gateway, timed; figures to OUT.

    With PSTATS, every thread the gateway starts runs under cProfile counting its own CPU time
    (thread_time), merged into PSTATS at exit.
    """
    from gateway.__main__ import main

    _instrument()
    stop = threading.Event()
    if cpu_profile is None:  # the sampler's own work would be in the CPU profile
        threading.Thread(target=_sample, args=(stop,), daemon=True).start()
    profiles = _profile_threads() if cpu_profile else []
    cpu = [time.process_time()]
    signal.signal(signal.SIGUSR1, lambda *_: _dump(out, cpu))
    code = main(["--no-archiver"])
    stop.set()
    if cpu_profile and profiles:
        stats = pstats.Stats(profiles[0])
        for more in profiles[1:]:
            stats.add(more)
        stats.dump_stats(cpu_profile)
    return code


def _profile_threads() -> list[cProfile.Profile]:
    """From now on, each new thread runs under a cProfile of its own CPU time."""
    profiles: list[cProfile.Profile] = []
    run = threading.Thread.run

    def profiled(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()
        try:
            run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled  # type: ignore[method-assign]
    return profiles


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user and system) each kind of thread of this process has used so far, by its
    name without its numbers ("store-0" and "store-1": "store"); the kernel's per-thread counts."""
    tick = os.sysconf("SC_CLK_TCK")
    spent: dict[str, float] = collections.defaultdict(float)
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:  # not Linux, or the thread just ended
            continue
        fields = stat.rsplit(")", 1)[1].split()
        kind = re.sub(r"-?\d+", "", thread.name)  # "Thread-3 (_run)": aiosmtpd's event loop
        spent[kind] += (int(fields[11]) + int(fields[12])) / tick
    return spent


def _dump(out: Path, cpu: list[float]) -> None:
    """Write what was measured so far, and start counting afresh (one dump per load)."""
    now = time.process_time()
    threads = _thread_cpu()
    data = {
        "threads": {k: v - _THREAD_CPU.get(k, 0.0) for k, v in threads.items()},
        "spans": {k: list(v) for k, v in _SPANS.items()},
        "samples": _SAMPLES.most_common(60),
        "self": _SELF.most_common(40),
        "busy": sum(_SELF.values()),
        "cpu": now - cpu[0],
        "statements": _STATEMENTS[0],
    }
    _STATEMENTS[0] = 0
    _THREAD_CPU.clear()
    _THREAD_CPU.update(threads)
    cpu[0] = now
    out.write_text(json.dumps(data))
    _SPANS.clear()
    _SAMPLES.clear()
    _SELF.clear()


def measure(ctx: Context, args: argparse.Namespace) -> list[str]:
    """Load the timed gateway with each number of clients; the report's lines."""
    archive = make_archive(
        ctx, "profile", database_url=postgres(ctx, durable=True) if args.postgresql else ""
    )
    out = ctx.path("profile.json")
    extra = [str(args.cpu_profile.resolve())] if args.cpu_profile else []
    # each process's PostgreSQL backends are told apart by their application_name (libpq's)
    gateway = ctx.start(
        "gateway-profiled",
        [PYTHON, "-m", "bench.gateway_profile", "serve", str(out), *extra],
        env={
            **archive.env,
            "PGAPPNAME": LISTENER,
        },
    )
    wait_port("127.0.0.1", archive.smtp_port, 60, gateway.popen)
    others: dict[str, Callable[[], float]] = {"client (this process)": _own_cpu}
    if not args.without_archiver:  # the spool is left to grow: the listener alone
        archiver = start_archiver(ctx, replace(archive, env={**archive.env, "PGAPPNAME": ARCHIVER}))
        others["archiver process"] = lambda: _cpu_of([archiver.popen.pid])
    if args.postgresql:
        url = archive.env["LISTGATE_DATABASE_URL"]
        others["PostgreSQL cluster (every process)"] = lambda: _cpu_of(_cluster(ctx))
        for name in (LISTENER, ARCHIVER):
            others[f"PostgreSQL backends of the {name}"] = _backends_cpu(url, name)
    lines: list[str] = []
    for reuse in _modes(args.reuse):
        for n in (int(c) for c in args.clients.split(",")):
            run_load(archive.smtp_port, archive.address, n, 40, reuse, "warm")
            if args.renice_archiver_backends and args.postgresql:
                url = archive.env["LISTGATE_DATABASE_URL"]
                for pid in _backends(url, ARCHIVER):
                    os.setpriority(os.PRIO_PROCESS, pid, args.renice_archiver_backends)
            os.kill(gateway.popen.pid, signal.SIGUSR1)  # forget the warm-up
            time.sleep(0.3)
            before = {name: spent() for name, spent in others.items()}
            res = run_load(
                archive.smtp_port, archive.address, n, 0, reuse, f"p{n}", duration=args.seconds
            )
            spent = {name: cpu() - before[name] for name, cpu in others.items()}
            os.kill(gateway.popen.pid, signal.SIGUSR1)
            time.sleep(0.5)
            mode = "reused connection" if reuse else "new connection per post"
            title = f"{n} client(s), {mode}, {res.rate:.0f} posts/s"
            lines += _report(json.loads(out.read_text()), res.accepted, title)
            lines += [
                f"  {name} CPU during the load: {1e6 * cpu / max(res.accepted, 1):.0f} us/post"
                for name, cpu in spent.items()
            ]
            if not args.without_archiver:  # the spool left behind, archived (its drain)
                lines.append(f"  spool drained {drained(archive):.1f} s after the load")
    gateway.stop()
    return lines


def _own_cpu() -> float:
    """CPU seconds (user and system) of this process: the SMTP clients' threads."""
    t = os.times()
    return t.user + t.system


def _backends(url: str, name: str) -> list[int]:
    """The pids of the PostgreSQL backends whose application_name is name."""
    import psycopg

    plain = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    with psycopg.connect(plain, autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchall()
    return [int(p) for (p,) in pids]


def _backends_cpu(url: str, name: str) -> Callable[[], float]:
    """CPU seconds so far of the PostgreSQL backends whose application_name is name (found
    anew each time: a pool may have opened more)."""
    return lambda: _cpu_of(_backends(url, name))


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds (user and system) these processes have used so far (the kernel's counts)."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        spent += (int(fields[11]) + int(fields[12])) / tick
    return spent


def _cluster(ctx: Context) -> list[int]:
    """The run's PostgreSQL server: its postmaster and every process it started (now)."""
    pid = int(ctx.path("postgres", "data", "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def _modes(spelled: str) -> list[bool]:
    """Connection modes to measure, as run_load's `reuse` flag."""
    return [m == "reused" for m in ("new", "reused") if m in spelled.split(",")]


def _report(data: dict[str, Any], posts: int, title: str) -> list[str]:
    """Mean ms per post for each timed step, then the sampler's top functions."""
    sampler = data.get("threads", {}).get("Thread (_sample)", 0.0)
    lines = [
        f"== {title}: {posts} posts, gateway CPU {1000 * data['cpu'] / max(posts, 1):.2f} ms/post"
        f" ({1000 * (data['cpu'] - sampler) / max(posts, 1):.2f} without this tool's sampler)",
        f"  SQL statements per post (all of the gateway's): "
        f"{data.get('statements', 0) / max(posts, 1):.2f}",
        "  CPU per post by thread (kernel counts, 10 ms ticks): "
        + ", ".join(
            f"{name} {1e6 * spent / max(posts, 1):.0f} us"
            for name, spent in sorted(data.get("threads", {}).items(), key=lambda kv: -kv[1])
            if spent > 0
        ),
    ]
    for name, values in data["spans"].items():
        if name == "group commit batch size":
            lines.append(
                f"  group commit: {len(values)} batches, mean {sum(values) / len(values):.1f} posts"
            )
            continue
        if name.endswith("(share)"):
            lines.append(f"  {name}: {sum(values) / len(values):.2f} of {len(values)} appends")
            continue
        mean = 1000 * sum(values) / max(len(values), 1)
        ranked = sorted(values)
        lines.append(
            f"  {name:<48} {mean:7.2f} ms mean over {len(values)} calls,"
            f" p50 {1000 * ranked[len(ranked) // 2]:.2f}"
            f" p99 {1000 * ranked[len(ranked) * 99 // 100]:.2f} max {1000 * ranked[-1]:.1f}"
        )
    total = max(data["busy"], 1)
    lines.append("  busy-thread stack samples: share containing each function (inclusive)")
    lines += [f"    {100 * n / total:5.1f}%  {where}" for where, n in data["samples"][:30]]
    lines.append("  busy-thread stack samples: share on top of the stack (self)")
    lines += [f"    {100 * n / total:5.1f}%  {where}" for where, n in data["self"][:25]]
    return lines


def main() -> None:
    """Profile the gateway under load and print where the time goes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgresql", action="store_true", help="on a throwaway PostgreSQL")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per case")
    parser.add_argument(
        "--cpu-profile",
        type=Path,
        help="also write a cProfile (CPU time of the gateway's threads, all cases) here",
    )
    parser.add_argument("--reuse", default="new,reused", help="connection modes: new, reused")
    parser.add_argument(
        "--renice-archiver-backends",
        type=int,
        default=0,
        help="an experiment: this nice value for the archiver's PostgreSQL backends (needs root)",
    )
    parser.add_argument(
        "--without-archiver",
        action="store_true",
        help="no archiver process during the load (the listener's cost alone)",
    )
    args = parser.parse_args()
    with scratch("listgate-gateway-profile-") as ctx:
        lines = measure(ctx, args)
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "serve":
        sys.exit(serve(Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) == 4 else None))
    main()
