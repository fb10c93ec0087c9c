"""Fan-out: one post to N subscribers, each with a personal unsubscribe link, into an SMTP sink."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from bench.archive import Archive, make_archive
from bench.common import (
    Context,
    NotAvailable,
    Row,
    children_pids,
    fmt_mb,
    fmt_rate,
    peak_rss_kib,
    verdict,
    worker_rss,
)
from bench.procs import start_gateway, start_worker
from bench.services import CountingSink, redis_url_db
from bench.smtp_load import make_post, send_one

log = logging.getLogger(__name__)
NAME = "fan-out"
GOAL_SECONDS = 10.0
GOAL_AT = 10_000
STALL_SECONDS = 60.0


def subscribers(ctx: Context) -> int:
    """How many subscribers the post goes to."""
    return 50 if ctx.memo.get("tiny") else (2_000 if ctx.quick else 10_000)


def time_cap(ctx: Context) -> float:
    """Longest wait for one fan-out; a quick run reports the rate over what arrived by then."""
    return 20.0 if ctx.memo.get("tiny") else (6.0 if ctx.quick else 1800.0)


def cases(ctx: Context) -> list[tuple[str, int]]:
    """(broker, worker processes) to measure; a quick run keeps the goal's case and the default."""
    if ctx.memo.get("tiny"):
        return [("redis", 2)]
    if ctx.quick:
        return [("redis", 2)]
    return [("redis", 1), ("redis", 2), ("embedded", 1), ("embedded", 2)]


def add_subscribers(archive: Archive, n: int, list_name: str | None = None) -> None:
    """n active list subscriptions, inserted in bulk."""
    from sqlalchemy import select

    from listgate.models import MailingList, Subscription
    from listgate.store import table

    engine = archive.engine()
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            list_id = conn.execute(
                select(MailingList.id).where(MailingList.name == (list_name or archive.list_name))
            ).scalar_one()
            conn.execute(
                table(Subscription).insert(),
                [
                    {
                        "list_id": list_id,
                        "address": f"sub{i}@subscribers.example",
                        "kind": "list",
                        "thread_key": 0,
                        "status": "active",
                        "created_at": now,
                        "confirmed_at": now,
                    }
                    for i in range(n)
                ],
            )
    finally:
        engine.dispose()


def _make(ctx: Context, broker: str, sink: CountingSink) -> Archive:
    extra = {"LISTGATE_OUTBOUND": sink.url}
    if broker == "redis":
        extra["LISTGATE_BROKER_URL"] = redis_url_db(ctx, 2)
    archive = make_archive(ctx, f"fanout-{broker}", **extra)
    add_subscribers(archive, subscribers(ctx))
    from listgate import lists
    from listgate.db import session_factory, transaction, writer

    engine = archive.engine()
    try:
        with transaction(session_factory(writer(engine))) as session:
            warm = lists.create(session, "warmup", "Warm-up list")
            lists.subscribe(session, warm, "warm@subscribers.example")
    finally:
        engine.dispose()
    return archive


def _wait(sink: CountingSink, want: int, timeout: float) -> int:
    """Wait until want recipients arrived, timeout, or none arrived for STALL_SECONDS; how many."""
    deadline = time.monotonic() + timeout
    last_change, seen = time.monotonic(), -1
    while time.monotonic() < deadline:
        _, recipients, _ = sink.snapshot()
        if recipients >= want:
            return recipients
        if recipients != seen:
            seen, last_change = recipients, time.monotonic()
        elif time.monotonic() - last_change > STALL_SECONDS:
            break
        time.sleep(0.02)
    return sink.snapshot()[1]


def _worker_rss(pid: int) -> tuple[int, int]:
    """(largest single process, sum) of peak RSS over the worker and its pool processes, KiB."""
    values = [peak_rss_kib(p) for p in [pid, *children_pids(pid)]]
    return max(values, default=0), sum(values)


def one_case(ctx: Context, archive: Archive, sink: CountingSink, broker: str, workers: int) -> Row:
    """Start a worker, prove it delivers, post once, time every delivery."""
    n = subscribers(ctx)
    case = (
        f"{n:,} subscribers, {broker} broker, {workers} worker process{'es' if workers > 1 else ''}"
    )
    goal = f"{GOAL_AT:,} in < {GOAL_SECONDS:.0f} s" if broker == "redis" and workers == 2 else ""
    worker = start_worker(ctx, archive, workers, f"worker-{broker}-{workers}")
    try:
        sink.reset()
        _, warm = make_post("warmup@bench.test", "warm")
        error = send_one(archive.smtp_port, "warmup@bench.test", warm)
        if error or _wait(sink, 1, 90) < 1:
            raise NotAvailable(
                f"the warm-up post was not delivered ({error or 'nothing reached the sink'}); "
                f"worker log: {worker.tail(2)[-200:]}"
            )
        sink.reset()
        _, raw = make_post(archive.address, f"fan{broker}{workers}")
        began = time.perf_counter()
        error = send_one(archive.smtp_port, archive.address, raw)
        if error:
            raise NotAvailable(f"the gateway refused the post: {error}")
        got = _wait(sink, n, time_cap(ctx))
        _, _, last = sink.snapshot()
        rss_max, rss_sum = _worker_rss(worker.popen.pid)
        worker_rss(ctx).append((case, rss_max, rss_sum))
    finally:
        worker.stop()
    seconds = (last - began) if last else 0.0
    rate = got / seconds if seconds else 0.0
    note = (
        ""
        if got >= n
        else f"stopped waiting after {time_cap(ctx):.0f} s: {got:,} of {n:,} delivered by then"
    )
    last_txt = (
        f"last after {seconds:.1f} s"
        if got >= n
        else f"{n:,} would take ~{n / rate:.0f} s"
        if rate
        else "none"
    )
    value = f"{fmt_rate(rate, ' deliveries/s')}, {last_txt}; worker peak {fmt_mb(rss_max)}"
    ok = got >= n and rate * GOAL_SECONDS >= GOAL_AT
    return Row(NAME, case, value, "", goal, verdict(ok) if goal else "", note)


def run(ctx: Context) -> list[Row]:
    """Rows for (redis, embedded) x (1, 2) worker processes."""
    rows: list[Row] = []
    wanted = cases(ctx)
    with CountingSink() as sink:
        for broker in dict.fromkeys(b for b, _ in wanted):
            try:
                archive = _make(ctx, broker, sink)
                gateway = start_gateway(ctx, archive, f"gateway-fanout-{broker}")
            except NotAvailable as exc:
                rows.append(Row.unavailable(NAME, f"{broker} broker", str(exc)))
                continue
            try:
                for workers in [w for b, w in wanted if b == broker]:
                    try:
                        rows.append(one_case(ctx, archive, sink, broker, workers))
                    except NotAvailable as exc:
                        rows.append(
                            Row.unavailable(NAME, f"{broker} broker, {workers} worker(s)", str(exc))
                        )
            finally:
                gateway.stop()
    return rows
