"""Peak memory: the gateway taking a 20 MB post, the worker during fan-out, the biggest import."""

from __future__ import annotations

import logging
from typing import cast

from bench.archive import make_archive
from bench.common import Context, NotAvailable, Row, fmt_mb, peak_rss_kib, worker_rss
from bench.import_rate import Imported
from bench.procs import start_gateway
from bench.smtp_load import make_post, send_one

log = logging.getLogger(__name__)
NAME = "memory"


def big_post_size(ctx: Context) -> int:
    """The size of the big post (20 MB; smaller for the test suite's smoke run)."""
    return 2 * 1024 * 1024 if ctx.memo.get("tiny") else 20 * 1024 * 1024


def gateway_big_post(ctx: Context) -> Row:
    """Peak RSS of `python -m gateway` before and after receiving one big post."""
    size = big_post_size(ctx)
    case = f"gateway receiving a {size // (1024 * 1024)} MB post"
    archive = make_archive(ctx, "memory-gateway")
    gateway = start_gateway(ctx, archive, "gateway-memory")
    try:
        _, small = make_post(archive.address, "memwarm")
        if error := send_one(archive.smtp_port, archive.address, small):
            raise NotAvailable(f"the warm-up post was refused: {error}")
        before = peak_rss_kib(gateway.popen.pid)
        _, raw = make_post(archive.address, "membig", size)
        error = send_one(archive.smtp_port, archive.address, raw)
        after = peak_rss_kib(gateway.popen.pid)
    finally:
        gateway.stop()
    note = f"refused: {error}" if error else ""
    return Row(
        NAME,
        case,
        f"peak {fmt_mb(after)} (was {fmt_mb(before)} before it: +{fmt_mb(after - before)})",
        f"{(after - before) / (size / 1024):.1f}x post",
        "",
        "",
        note,
    )


def run(ctx: Context) -> list[Row]:
    """The gateway row, plus the worker and import rows from the benchmarks that ran before."""
    rows: list[Row] = []
    try:
        rows.append(gateway_big_post(ctx))
    except NotAvailable as exc:
        rows.append(Row.unavailable(NAME, "gateway receiving a big post", str(exc)))
    workers = worker_rss(ctx)
    if workers:
        for case, rss_max, rss_sum in workers:
            rows.append(
                Row(
                    NAME,
                    f"worker during fan-out: {case}",
                    f"largest process {fmt_mb(rss_max)}, all worker processes {fmt_mb(rss_sum)}",
                )
            )
    else:
        rows.append(
            Row.unavailable(
                NAME, "worker during fan-out", "the fan-out benchmark did not run in this run"
            )
        )
    imports = sorted(
        (v for k, v in ctx.memo.items() if k.startswith("synthetic-archive-")),
        key=lambda i: cast(Imported, i).messages,
    )
    if imports:
        big = cast(Imported, imports[-1])  # what bench.import_rate built for that key
        rows.append(
            Row(
                NAME,
                f"`listgate import` of {big.messages:,} messages",
                f"peak {fmt_mb(big.peak_rss_kib)}",
            )
        )
    else:
        rows.append(
            Row.unavailable(
                NAME, "import of the synthetic archive", "the import benchmark did not import it"
            )
        )
    return rows
