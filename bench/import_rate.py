"""`listgate import`: messages/s and peak memory, against public-inbox importing the same mbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.archive import Archive, make_archive
from bench.common import PYTHON, Context, NotAvailable, Row, fmt_mb, fmt_rate, run_measured, verdict
from bench.corpora import linux_man, synthetic
from bench.peer import PublicInbox, import_mbox

log = logging.getLogger(__name__)
NAME = "import"
GOAL = 2.0


@dataclass
class Imported:
    """An archive made by `listgate import`, with what the import cost."""

    archive: Archive
    mbox: Path
    messages: int
    seconds: float
    peak_rss_kib: int

    @property
    def rate(self) -> float:
        """Archived messages per second."""
        return self.messages / self.seconds if self.seconds else 0.0


def linux_man_limit(ctx: Context) -> int:
    """How much of linux-man a run uses (0: all 17,885 messages)."""
    return 300 if ctx.memo.get("tiny") else (500 if ctx.quick else 0)


def synthetic_sizes(ctx: Context) -> list[int]:
    """Synthetic archive sizes a run imports."""
    if ctx.memo.get("tiny"):
        return [300]
    if ctx.quick:
        return [500]
    size = int(ctx.memo.get("synthetic-size", 100_000))  # type: ignore[call-overload]
    return [size, 1_000_000] if ctx.memo.get("huge") else [size]


def listgate_import(ctx: Context, name: str, mbox: Path) -> Imported:
    """Import mbox into a fresh archive with the real command; NotAvailable if it fails."""
    archive = make_archive(ctx, name)
    log_path = ctx.path("logs", f"import-{name}.log")
    cmd = [PYTHON, "-m", "listgate.cli", "import", str(mbox), "--list", archive.list_name]
    status, seconds, rss = run_measured(cmd, archive.env, log_path, timeout=6 * 3600)
    if status != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
        raise NotAvailable(f"`listgate import` exited {status}: {' '.join(tail)[-200:]}")
    return Imported(archive, mbox, archive.count(), seconds, rss)


def linux_man_archive(ctx: Context) -> Imported:
    """linux-man imported once per run (pages and storage reuse it)."""
    limit = linux_man_limit(ctx)
    return ctx.once(
        "linux-man-archive", lambda: listgate_import(ctx, "linux-man", linux_man(limit))
    )


def linux_man_peer(ctx: Context) -> PublicInbox:
    """The same linux-man mbox imported into public-inbox once per run."""
    limit = linux_man_limit(ctx)
    return ctx.once(
        "linux-man-public-inbox", lambda: import_mbox(ctx, "linuxman", linux_man(limit))
    )


def _rows(
    ctx: Context,
    label: str,
    ours: Imported | NotAvailable,
    theirs: PublicInbox | NotAvailable | None,
) -> list[Row]:
    if isinstance(ours, NotAvailable):
        return [
            Row.unavailable(
                NAME, f"{label}: listgate import", str(ours), goal=f">= {GOAL}x public-inbox"
            )
        ]
    value = (
        f"{fmt_rate(ours.rate, ' msg/s')} ({ours.messages:,} msgs in {ours.seconds:.0f} s, "
        f"peak {fmt_mb(ours.peak_rss_kib)})"
    )
    if theirs is None:
        return [
            Row(NAME, f"{label}: listgate import", value, note="public-inbox not run at this size")
        ]
    if isinstance(theirs, NotAvailable):
        return [
            Row(
                NAME,
                f"{label}: listgate import",
                value,
                goal=f">= {GOAL}x public-inbox",
                verdict="n/a",
                note=f"public-inbox: {theirs}",
            )
        ]
    their_rate = theirs.count() / theirs.seconds if theirs.seconds else 0.0
    ratio = ours.rate / their_rate if their_rate else 0.0
    return [
        Row(
            NAME,
            f"{label}: listgate import vs public-inbox",
            value + f"; public-inbox {fmt_rate(their_rate, ' msg/s')}"
            f" (peak {fmt_mb(theirs.peak_rss_kib)})",
            f"{ratio:.2f}",
            f">= {GOAL}x",
            verdict(ratio >= GOAL),
        )
    ]


def _attempt(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except NotAvailable as exc:
        return exc


def run(ctx: Context) -> list[Row]:
    """Rows for linux-man and each synthetic size, plus the memory-flatness row."""
    limit = linux_man_limit(ctx)
    label = f"linux-man ({'first ' + format(limit, ',') if limit else 'all'} msgs)"
    ours = _attempt(lambda: linux_man_archive(ctx))
    theirs = _attempt(lambda: linux_man_peer(ctx))
    rows = _rows(ctx, label, ours, theirs)
    imported = [ours] if isinstance(ours, Imported) else []
    for n in synthetic_sizes(ctx):
        mbox = synthetic(ctx, n)
        mine = _attempt(partial(listgate_import, ctx, f"synthetic-{n}", mbox))
        compare = n <= 100_000 and not ctx.memo.get("tiny")
        peer = _attempt(partial(import_mbox, ctx, f"synth{n}", mbox)) if compare else None
        rows += _rows(ctx, f"synthetic {n:,} msgs", mine, peer)
        if isinstance(mine, Imported):
            imported.append(mine)
            ctx.memo[f"synthetic-archive-{n}"] = mine
    if len(imported) >= 2:
        small, big = (
            min(imported, key=lambda i: i.messages),
            max(imported, key=lambda i: i.messages),
        )
        growth = big.peak_rss_kib / small.peak_rss_kib if small.peak_rss_kib else 0.0
        rows.append(
            Row(
                NAME,
                f"peak RSS, {small.messages:,} vs {big.messages:,} msgs",
                f"{fmt_mb(small.peak_rss_kib)} vs {fmt_mb(big.peak_rss_kib)}",
                f"{growth:.2f}",
                "flat (<= 1.25x)",
                verdict(growth <= 1.25),
            )
        )
    return rows
