"""`python -m bench`: run the benchmarks, print one table, write it into docs/benchmarks.md.

python -m bench                 # the full run (long: see docs/benchmarks.md)
python -m bench --quick         # about two minutes, smaller sizes
python -m bench --only pages,storage --quick
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import ROOT, Context, NotAvailable, Row, machine_info
from bench.report import render_table, write_report

log = logging.getLogger("bench")

# name -> module, in the order they run (later ones reuse archives the earlier ones built)
# (the million-message ones last: their archive takes longest to build the first time)
BENCHMARKS = {
    "ingest": "bench.live_ingest",
    "fanout": "bench.fanout",
    "import": "bench.import_rate",
    "pages": "bench.pages",
    "memory": "bench.memory",
    "storage": "bench.storage",
    "threading": "bench.threading_cost",
    "bigpages": "bench.big_pages",
}
EXTRA = {"soak": "bench.soak"}  # run only when asked for (`make soak`)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description="listgate benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, about two minutes")
    parser.add_argument(
        "--soak",
        action="store_true",
        help="only the soak: sustained ingest for LISTGATE_SOAK_MINUTES (default 10)",
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="the report to update ('-' to write none)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep archives and logs here (default: a temp dir)",
    )
    parser.add_argument(
        "--repeats", type=int, default=0, help="runs per figure (default 1 quick, 3 full)"
    )
    parser.add_argument(
        "--huge",
        action="store_true",
        help="also import the 1,000,000-message synthetic archive (hours at today's import rate)",
    )
    parser.add_argument(
        "--synthetic-size",
        type=int,
        default=100_000,
        help="messages in the synthetic mbox the full run imports (default 100,000)",
    )
    # the test suite's smoke size
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def selected(only: str) -> list[str]:
    """The benchmark names to run; SystemExit naming an unknown one."""
    if not only:
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {**BENCHMARKS, **EXTRA}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return names


def run_one(ctx: Context, name: str) -> list[Row]:
    """Run one benchmark module; a missing piece or a crash becomes a row, never a number."""
    started = time.monotonic()
    try:
        module = importlib.import_module({**BENCHMARKS, **EXTRA}[name])
        rows = module.run(ctx)
    except NotAvailable as exc:
        rows = [Row.unavailable(name, "all", str(exc))]
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' rows
        log.error("benchmark %s failed:\n%s", name, traceback.format_exc())
        rows = [Row(name, "all", f"failed: {type(exc).__name__}: {exc}"[:300], verdict="error")]
    log.info("%s: %d rows in %.0fs", name, len(rows), time.monotonic() - started)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run, print, write."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("alembic", "celery", "kombu", "amqp", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    names = ["soak"] if args.soak else selected(args.only)
    quick = args.quick or args.tiny
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="listgate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        workdir=workdir.resolve(), quick=quick, repeats=args.repeats or (1 if quick else 3)
    )
    if args.tiny:
        ctx.memo["tiny"] = True
    if args.huge:
        ctx.memo["huge"] = True
    ctx.memo["synthetic-size"] = args.synthetic_size
    info = machine_info()
    started = time.monotonic()
    rows: list[Row] = []
    mode = "soak" if args.soak else "tiny" if args.tiny else ("quick" if quick else "full")
    with ctx.stack:
        for done, name in enumerate(names):
            log.info("running %s (%s)", name, "quick" if quick else "full")
            rows.extend(run_one(ctx, name))
            if str(args.out) != "-" and done + 1 < len(
                names
            ):  # a run stopped early keeps what it measured
                partial = ctx.notes + [
                    f"Partial: {done + 1} of {len(names)} benchmarks done so far."
                ]
                write_report(args.out, mode, info, rows, partial, " ".join(sys.argv[1:]))
    elapsed = time.monotonic() - started
    info["load average at end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if max(os.getloadavg()[0], float(info["load average at start"].split(",")[0])) > (
        os.cpu_count() or 1
    ):
        ctx.notes.append(
            "The machine was shared and busy during this run (load average above the core count): "
            "absolute figures are pessimistic, compare the ratios taken in this run."
        )
    info["duration"] = f"{elapsed:.0f} s"
    sys.stdout.write("\n" + render_table(rows) + "\n")
    if str(args.out) != "-":
        write_report(args.out, mode, info, rows, ctx.notes, " ".join(sys.argv[1:]))
        log.info("wrote %s", args.out)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log.info("archives and logs kept in %s", workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
