"""Where `listgate import`'s two processes wait: a timeline of one whole import.

`python -m bench.import_timeline MBOX` imports MBOX into a fresh data directory with the real
command (`listgate import`, run in this process) and records, batch by batch, when each process
worked at what, on the system's monotonic clock (the same in both processes):

- the archiving process (this one): reading and splitting the mbox (`read`), the look-up of what
  is archived (`fresh`), a batch parsed here (`parse here`), handing a batch to the parsing
  process (`submit`), waiting for and unpickling a parsed batch (`take`), archiving a batch
  (`archive`, of which the database's COMMIT with its fsync, `commit`);
- the parsing process: reading a batch (`input`, mostly waiting for it), parsing it (`parse`),
  writing its reply (`reply`, blocked while nobody reads it).

It prints each batch's spans, then each process's total per kind and its idle time (the run's
wall time less its spans). The tracing is wrapped around the program from here (patched
functions, an SQLAlchemy event, the parsing process started through this module), so nothing of
it is in `listgate import` itself. `--batch N` as the command's; `--json FILE` writes the spans.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Span = tuple[str, str, float, float]  # (process, kind, start, end)
_ENV = "LISTGATE_BENCH_TIMELINE"  # where the parsing process appends its spans


class _Timed:
    """pickle for the parsing process: each load recorded as an `input` span."""

    HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL
    UnpicklingError = pickle.UnpicklingError
    dumps, dump = staticmethod(pickle.dumps), staticmethod(pickle.dump)  # an older reply's

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans

    def load(self, stream: Any) -> Any:
        t0 = time.monotonic()
        try:
            return pickle.load(stream)
        finally:
            self.spans.append(("parser", "input", t0, time.monotonic()))


class _Pickle:
    """pickle for the archiving process: each loads and dumps recorded (`unpickle`, `pickle`)."""

    HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL
    UnpicklingError = pickle.UnpicklingError

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans

    load, dump = staticmethod(pickle.load), staticmethod(pickle.dump)  # an older hand-over's

    def loads(self, data: bytes) -> Any:
        t0 = time.monotonic()
        try:
            return pickle.loads(data)
        finally:
            self.spans.append(("archiver", "unpickle", t0, time.monotonic()))

    def dumps(self, obj: Any, protocol: int | None = None) -> bytes:
        t0 = time.monotonic()
        try:
            return pickle.dumps(obj, protocol=protocol)
        finally:
            self.spans.append(("archiver", "pickle", t0, time.monotonic()))


class _Replies:
    """The parsing process's replies stream: each write and flush recorded as a `reply` span."""

    def __init__(self, stream: Any, spans: list[Span]) -> None:
        self.stream, self.spans = stream, spans

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def write(self, data: bytes) -> int:
        t0 = time.monotonic()
        try:
            return int(self.stream.write(data))
        finally:
            self.spans.append(("parser", "reply", t0, time.monotonic()))

    def flush(self) -> None:
        t0 = time.monotonic()
        try:
            self.stream.flush()
        finally:
            self.spans.append(("parser", "reply", t0, time.monotonic()))


def _child() -> None:
    """The parsing process, its spans appended to the file named in the environment."""
    from listgate import parse_process

    spans: list[Span] = []
    parse_process.pickle = _Timed(spans)  # type: ignore[assignment]
    parse, serve = parse_process.parse_all, parse_process.serve

    def parse_all(raws: list[bytes]) -> Any:
        t0 = time.monotonic()
        try:
            return parse(raws)
        finally:
            spans.append(("parser", "parse", t0, time.monotonic()))

    parse_process.parse_all = parse_all
    parse_process.serve = lambda requests, replies: serve(requests, _Replies(replies, spans))  # type: ignore[arg-type]
    try:
        parse_process.main()
    finally:
        with open(os.environ[_ENV], "a") as out:
            out.write(json.dumps(spans) + "\n")


def _span(spans: list[Span], kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            spans.append(("archiver", kind, t0, time.monotonic()))

    return timed


def _patch(spans: list[Span]) -> None:
    """Record the archiving process's spans; start the parsing process through _child."""
    from sqlalchemy import event

    from listgate import importer, parse_process

    imp = importer.Importer
    imp._fresh = _span(spans, "fresh", imp._fresh)  # type: ignore[method-assign]
    imp._commit = _span(spans, "archive", imp._commit)  # type: ignore[method-assign]
    importer.parse_all = _span(spans, "parse here", importer.parse_all)
    ahead = parse_process.ParseAhead
    parse_process.pickle = _Pickle(spans)  # type: ignore[assignment]
    ahead.submit = _span(spans, "submit", ahead.submit)  # type: ignore[method-assign]
    ahead.take = _span(spans, "take", ahead.take)  # type: ignore[method-assign]

    sources = importer.sources

    def timed_sources(path: Path) -> Any:
        messages, total, position = sources(path)

        def read() -> Iterator[bytes]:
            while True:
                t0 = time.monotonic()
                raw = next(messages, None)
                spans.append(("archiver", "read", t0, time.monotonic()))
                if raw is None:
                    return
                yield raw

        return read(), total, position

    importer.sources = timed_sources

    make_engine = importer.make_engine

    def traced_engine(settings: Any, **kwargs: Any) -> Any:
        engine = make_engine(settings, **kwargs)
        started: list[float] = []

        @event.listens_for(engine, "commit")
        def _before(_conn: Any) -> None:
            started.append(time.monotonic())

        def after(_session: Any) -> None:
            if started:
                spans.append(("archiver", "commit", started.pop(), time.monotonic()))

        from sqlalchemy.orm import Session

        event.listen(Session, "after_commit", after)
        return engine

    importer.make_engine = traced_engine

    popen = subprocess.Popen

    def through_here(args: Any, *rest: Any, **kwargs: Any) -> Any:
        """The parsing process started as this module's --child (this process only)."""
        if list(args[-2:]) == ["-m", "listgate.parse_process"]:
            args = [*args[:-1], "bench.import_timeline", "--child"]
        return popen(args, *rest, **kwargs)

    subprocess.Popen = through_here  # type: ignore[assignment,misc]


def _merge(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the intervals (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def report(spans: list[Span], t0: float, t1: float, batches: bool) -> str:
    """Each process's spans per kind and its idle time; each batch's spans if asked."""
    out = []
    wall = t1 - t0
    per: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for proc, kind, a, b in spans:
        per[(proc, kind)].append((a, b))
    if batches:
        for proc, kind, a, b in sorted(spans, key=lambda s: s[2]):
            if kind != "read":
                out.append(f"{a - t0:8.3f} {b - t0:8.3f} {b - a:7.3f}  {proc:8} {kind}")
    out.append(f"wall {wall:.2f} s (from the import's start to its end)")
    for proc in ("archiver", "parser"):
        mine = [(a, b) for p, _k, a, b in spans if p == proc]
        if not mine:
            continue
        out.append(f"{proc}: first span at {min(a for a, _ in mine) - t0:.3f} s")
        nested = {"commit", "unpickle", "pickle"}  # inside archive, take, submit
        for (p, kind), ivs in sorted(per.items()):
            if p == proc:
                inside = " (inside another)" if kind in nested else ""
                out.append(f"  {kind:12} {_merge(ivs):7.2f} s  {len(ivs):6} spans{inside}")
        waits = {"take", "input", "reply"}
        busy = _merge([(a, b) for p, k, a, b in spans if p == proc and k not in waits])
        waiting = _merge([(a, b) for p, k, a, b in spans if p == proc and k in waits])
        out.append(
            f"  working {busy:.2f} s, in take/input/reply {waiting:.2f} s,"
            f" outside any span {wall - _merge(mine):.2f} s"
        )
    return "\n".join(out)


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        _child()
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mbox", type=Path)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batches", action="store_true", help="print every span")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-timeline-") as tmp:
        os.environ["LISTGATE_DATA_DIR"] = tmp
        os.environ.pop("LISTGATE_DATABASE_URL", None)
        os.environ[_ENV] = child_spans = str(Path(tmp) / "parser-spans.jsonl")
        from listgate.cli import main as cli

        with contextlib.suppress(SystemExit):
            cli(["lists", "create", "bench"], standalone_mode=False)
        spans: list[Span] = []
        _patch(spans)
        t0 = time.monotonic()
        cli(
            ["import", str(args.mbox), "--list", "bench", "--quiet", "--batch", str(args.batch)],
            standalone_mode=False,
        )
        t1 = time.monotonic()
        with contextlib.suppress(FileNotFoundError), open(child_spans) as f:
            for line in f:
                spans += [tuple(s) for s in json.loads(line)]
    sys.stdout.write(report(spans, t0, t1, args.batches) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"t0": t0, "t1": t1, "spans": spans}))


if __name__ == "__main__":
    main()
