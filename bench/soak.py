"""`make soak`: sustained live ingest for minutes; the rate and the gateway's memory must hold."""

from __future__ import annotations

import logging
import os

from bench import freshness
from bench.archive import make_archive
from bench.common import Context, NotAvailable, Row, fmt_mb, fmt_rate, peak_rss_kib, verdict
from bench.procs import start_gateway
from bench.smtp_load import run_load

log = logging.getLogger(__name__)
NAME = "soak"


def minutes() -> int:
    """How long to soak (LISTGATE_SOAK_MINUTES, default 10)."""
    raw = os.environ.get("LISTGATE_SOAK_MINUTES", "10")
    return max(1, int(raw)) if raw.isdigit() else 10


def run(ctx: Context) -> list[Row]:
    """Four reused SMTP connections posting for N minutes: rate and peak RSS minute by minute."""
    total = 1 if ctx.memo.get("tiny") else minutes()
    archive = make_archive(ctx, "soak")
    gateway = start_gateway(ctx, archive, "gateway-soak")
    rows: list[Row] = []
    rates, rss = [], []
    accepted = 0
    try:
        for minute in range(total):
            res = run_load(
                archive.smtp_port,
                archive.address,
                4,
                0,
                True,
                f"soak{minute}",
                duration=5.0 if ctx.memo.get("tiny") else 60.0,
            )
            accepted += res.accepted
            rates.append(res.rate)
            rss.append(peak_rss_kib(gateway.popen.pid))
            log.info(
                "soak minute %d: %.0f posts/s, gateway peak %s",
                minute + 1,
                res.rate,
                fmt_mb(rss[-1]),
            )
            rows.append(
                Row(
                    NAME,
                    f"minute {minute + 1}",
                    f"{fmt_rate(res.rate)}, gateway peak {fmt_mb(rss[-1])}",
                    note=f"{len(res.errors)} errors" if res.errors else "",
                )
            )
        # The gateway's own archiver can fall behind a gateway taking all it can (the spool
        # grows, by design): what was accepted is counted once the spool is drained.
        waited = freshness.drained(archive)
        visible = archive.count()
    finally:
        gateway.stop()
    if not rates:
        raise NotAvailable("no load was run")
    drop = rates[-1] / rates[0] if rates[0] else 0.0
    growth = rss[-1] / rss[0] if rss[0] else 0.0
    rows.append(
        Row(
            NAME,
            "last minute vs first",
            f"rate {drop:.2f}x, memory {growth:.2f}x",
            f"{drop:.2f}",
            "rate >= 0.8x, memory <= 1.2x",
            verdict(drop >= 0.8 and growth <= 1.2),
        )
    )
    rows.append(
        Row(
            NAME,
            "every accepted post archived",
            f"{visible:,} visible of {accepted:,} accepted",
            "",
            "all, once",
            verdict(visible == accepted),
            note=f"spool drained {waited:.1f} s after the load",
        )
    )
    return rows
