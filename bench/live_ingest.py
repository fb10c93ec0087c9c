"""Live ingest over real SMTP: posts/s answered 250 (spooled), ours against a bare aiosmtpd,
case by case in one run, and beside both the durable floor: aiosmtpd whose 250 waits for a group
commit of the bytes and nothing else (bench.services.start_floor_smtpd), on the same database.

Ours is the gateway as `listgate up` runs it: the listener only spools (--no-archiver) and a
separate archiver process archives meanwhile. After each measurement the spool must drain into
the archive with every accepted post (a 250 that never became a post would be a loss, and is
reported on the row). The archiver's sustained rate and the freshness (250 -> visible) follow,
from bench.freshness.
"""

from __future__ import annotations

import logging

from bench import freshness
from bench.archive import Archive, make_archive
from bench.common import Context, NotAvailable, Proc, Row, fmt_rate, median, verdict
from bench.procs import start_archiver, start_gateway
from bench.services import postgres, redis_url_db, start_bare_smtpd, start_floor_smtpd
from bench.smtp_load import run_load

log = logging.getLogger(__name__)
NAME = "live ingest"
CLIENTS = (1, 4, 16)
GOAL = 0.5


def clients(ctx: Context) -> tuple[int, ...]:
    """Concurrent SMTP clients to measure (the test suite's smoke run keeps two)."""
    return (1, 4) if ctx.memo.get("tiny") else CLIENTS


def _duration(ctx: Context) -> float:
    """Seconds of load per measurement."""
    return 0.3 if ctx.memo.get("tiny") else (1.0 if ctx.quick else 5.0)


def _rate(
    ctx: Context, port: int, to: str, clients: int, reuse: bool, tag: str
) -> tuple[float, int, str]:
    """(posts/s answered 250, how many, errors noted) for one run."""
    res = run_load(port, to, clients, 0, reuse, tag, duration=_duration(ctx))
    note = f"{len(res.errors)} errors, e.g. {res.errors[0]}" if res.errors else ""
    return (res.accepted / res.seconds if res.seconds else 0.0), res.accepted, note


def _backend(ctx: Context, label: str) -> Archive:
    if label == "sqlite":
        return make_archive(ctx, "live-sqlite")
    url = postgres(ctx, durable=True)  # the spool's commit before a 250 flushes the WAL
    try:
        broker = {"LISTGATE_BROKER_URL": redis_url_db(ctx, 1)}
    except NotAvailable:
        broker = {}
    return make_archive(ctx, "live-postgres", database_url=url, **broker)


def run(ctx: Context) -> list[Row]:
    """Rows: one per (database, clients, connection mode) with our/bare ratio; then the archiver's.

    The archiver's rows give its rate and the archive's freshness.
    """
    rows: list[Row] = []
    # the quick run too: acceptance is claimed for both databases (the smoke run keeps SQLite)
    backends = ["sqlite"] if ctx.memo.get("tiny") else ["sqlite", "postgresql"]
    try:
        _bare, bare_port = start_bare_smtpd(ctx)
        run_load(bare_port, "bench@bench.test", 4, 50, True, "warm")
    except NotAvailable as exc:
        rows.append(Row.unavailable(NAME, "bare aiosmtpd", str(exc)))
        bare_port = 0
    for label in backends:
        try:
            archive = _backend(ctx, label)
            gateway = start_gateway(ctx, archive, f"gateway-{label}", ("--no-archiver",))
            archiver = start_archiver(ctx, archive, f"archiver-{label}")
            floor_port = _floor(ctx, label) if bare_port else 0
        except NotAvailable as exc:
            rows.append(
                Row.unavailable(
                    NAME, f"{label}: posts/s", str(exc), goal=f">= {GOAL} of bare, 4+ clients"
                )
            )
            continue
        try:
            run_load(archive.smtp_port, archive.address, 4, 40, True, f"warm-{label}")
            freshness.drained(archive)
            for n in clients(ctx):
                for reuse in (False, True):
                    rows.append(_row(ctx, archive, label, n, reuse, (bare_port, floor_port)))
            rows.extend(freshness.run(ctx, archive, label, archiver))
        finally:
            gateway.stop()
            archiver.stop()
            later = ctx.memo.pop(f"archiver-{label}", None)
            if isinstance(later, Proc):  # bench.freshness's second archiver
                later.stop()
    return rows


def _floor(ctx: Context, label: str) -> int:
    """The durable floor's port for this database (bench.services.start_floor_smtpd)."""
    if label == "sqlite":
        target = str(ctx.path("floor", "floor.sqlite3"))
    else:
        target = postgres(ctx, durable=True)
    return start_floor_smtpd(ctx, label, target)[1]


def _row(
    ctx: Context, archive: Archive, label: str, clients: int, reuse: bool, refs: tuple[int, int]
) -> Row:
    """Ours, bare and the durable floor alternately (ctx.repeats rounds), medians and ours/bare.

    Then the spool must drain whole.
    """
    bare_port, floor_port = refs
    mode = "reused conn" if reuse else "new conn/post"
    case = f"{label}, {clients} client{'s' if clients > 1 else ''}, {mode}"
    ours, theirs, floor, notes, accepted = [], [], [], [], 0
    before = archive.count()
    for r in range(ctx.repeats):
        tag = f"{label}{clients}{reuse}-{r}"
        rate, n, note = _rate(ctx, archive.smtp_port, archive.address, clients, reuse, tag)
        ours.append(rate)
        accepted += n
        notes.append(note)
        if bare_port:
            theirs.append(_rate(ctx, bare_port, "bench@bench.test", clients, reuse, "b" + tag)[0])
        if floor_port:
            floor.append(_rate(ctx, floor_port, "bench@bench.test", clients, reuse, "f" + tag)[0])
    waited = freshness.drained(archive)
    archived = archive.count() - before
    if archived != accepted:
        notes.append(f"LOSS: {accepted} answered 250, {archived} archived")
    if floor and not all(floor):
        notes.append("the durable floor failed (see its log)")
    elif floor and all(theirs):
        notes.append(
            f"durable floor {fmt_rate(median(floor))} = "
            f"{median([f / t for f, t in zip(floor, theirs, strict=True)]):.2f} of bare, "
            f"ours {median([o / f for o, f in zip(ours, floor, strict=True)]):.2f} of it"
        )
    notes.append(f"spool drained {waited:.1f} s after the load")
    note = "; ".join(n for n in dict.fromkeys(notes) if n)
    goal = f">= {GOAL} of bare" if clients >= 4 else ""
    if not theirs:
        return Row(NAME, case, fmt_rate(median(ours)), "", goal, "", note)
    ratio = median([o / t for o, t in zip(ours, theirs, strict=False) if t]) if any(theirs) else 0.0
    return Row(
        NAME,
        case,
        f"{fmt_rate(median(ours))} (bare {fmt_rate(median(theirs))})",
        f"{ratio:.2f}",
        goal,
        verdict(ratio >= GOAL) if goal else "",
        note,
    )
