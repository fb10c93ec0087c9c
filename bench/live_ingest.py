"""Live ingest over real SMTP: posts/s committed, ours against a bare aiosmtpd in the same run."""

from __future__ import annotations

import logging
import time

from bench.archive import Archive, make_archive
from bench.common import Context, NotAvailable, Row, fmt_rate, median, verdict
from bench.procs import start_gateway
from bench.services import postgres, redis_url_db, start_bare_smtpd
from bench.smtp_load import run_load

log = logging.getLogger(__name__)
NAME = "live ingest"
CLIENTS = (1, 4, 16)


def clients(ctx: Context) -> tuple[int, ...]:
    """Concurrent SMTP clients to measure (the test suite's smoke run keeps two)."""
    return (1, 4) if ctx.memo.get("tiny") else CLIENTS
GOAL = 0.5


def _duration(ctx: Context) -> float:
    """Seconds of load per measurement."""
    return 0.3 if ctx.memo.get("tiny") else (1.0 if ctx.quick else 5.0)


def _measure(ctx: Context, port: int, to: str, clients: int, reuse: bool, tag: str,
             archive: Archive | None = None) -> tuple[float, str]:
    """Median posts/s over ctx.repeats runs; with an archive, only posts whose row is visible count."""
    rates, notes = [], []
    for r in range(ctx.repeats):
        before = archive.count() if archive else 0
        res = run_load(port, to, clients, 0, reuse, f"{tag}-{r}", duration=_duration(ctx))
        if archive is not None:
            deadline = time.monotonic() + 10
            while (visible := archive.count() - before) < res.accepted and time.monotonic() < deadline:
                time.sleep(0.05)
            if visible < res.accepted:
                notes.append(f"only {visible} of {res.accepted} accepted posts became visible")
            committed = min(visible, res.accepted)
        else:
            committed = res.accepted
        if res.errors:
            notes.append(f"{len(res.errors)} errors, e.g. {res.errors[0]}")
        rates.append(committed / res.seconds if res.seconds else 0.0)
    return median(rates), "; ".join(dict.fromkeys(notes))


def _bare_rates(ctx: Context) -> dict[tuple[int, bool], float]:
    def make() -> dict[tuple[int, bool], float]:
        proc, port = start_bare_smtpd(ctx)
        try:
            run_load(port, "bench@bench.test", 4, 50, True, "warm")
            return {(c, reuse): _measure(ctx, port, "bench@bench.test", c, reuse, f"bare{c}{reuse}")[0]
                    for c in clients(ctx) for reuse in (False, True)}
        finally:
            proc.stop()

    return ctx.once("bare-smtp-rates", make)  # type: ignore[return-value]


def _backend(ctx: Context, label: str) -> Archive:
    if label == "sqlite":
        return make_archive(ctx, "live-sqlite")
    url = postgres(ctx)
    try:
        broker = {"LISTGATE_BROKER_URL": redis_url_db(ctx, 1)}
    except NotAvailable:
        broker = {}
    return make_archive(ctx, "live-postgres", database_url=url, **broker)


def run(ctx: Context) -> list[Row]:
    """Rows: one per (database, clients, connection mode), each with our/bare ratio."""
    rows: list[Row] = []
    backends = ["sqlite"] if ctx.quick else ["sqlite", "postgresql"]
    bare: dict[tuple[int, bool], float] | None = None
    try:
        bare = _bare_rates(ctx)
    except NotAvailable as exc:
        rows.append(Row.unavailable(NAME, "bare aiosmtpd", str(exc)))
    for label in backends:
        try:
            archive = _backend(ctx, label)
            gateway = start_gateway(ctx, archive, f"gateway-{label}")
        except NotAvailable as exc:
            rows.append(Row.unavailable(NAME, f"{label}: posts/s", str(exc), goal=f">= {GOAL} of bare, 4+ clients"))
            continue
        try:
            run_load(archive.smtp_port, archive.address, 4, 40, True, f"warm-{label}")
            for n in clients(ctx):
                for reuse in (False, True):
                    rows.append(_row(ctx, archive, label, n, reuse, bare))
        finally:
            gateway.stop()
    return rows


def _row(ctx: Context, archive: Archive, label: str, clients: int, reuse: bool,
         bare: dict[tuple[int, bool], float] | None) -> Row:
    mode = "reused conn" if reuse else "new conn/post"
    case = f"{label}, {clients} client{'s' if clients > 1 else ''}, {mode}"
    ours, note = _measure(ctx, archive.smtp_port, archive.address, clients, reuse, f"{label}{clients}{reuse}", archive)
    goal = f">= {GOAL} of bare" if clients >= 4 else ""
    if not bare or not bare.get((clients, reuse)):
        return Row(NAME, case, fmt_rate(ours), "", goal, "", note)
    ratio = ours / bare[(clients, reuse)]
    return Row(NAME, case, f"{fmt_rate(ours)} (bare {fmt_rate(bare[(clients, reuse)])})", f"{ratio:.2f}", goal,
               verdict(ratio >= GOAL) if goal else "", note)
