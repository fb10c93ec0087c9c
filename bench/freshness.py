"""The archiver stage: its sustained rate (a spool of posts drained) and the archive's freshness.

Freshness is the time from a post's 250 to its row being visible in the archive, which is what
its thread page shows (pages keep no cache of a thread's list of posts). Posts are sent at half
the archiver's sustained rate by 4 paced clients; one reader polls for new rows every 5 ms.
"""

from __future__ import annotations

import smtplib
import threading
import time
from typing import Any

from sqlalchemy import text

from bench.archive import Archive
from bench.common import Context, Proc, Row, fmt_ms, fmt_rate, percentile, verdict
from bench.procs import start_archiver
from bench.smtp_load import make_post, run_load

NAME = "live ingest"
FRESH_GOAL = 1.0  # seconds, p99
VISIBLE = "SELECT count(*) FROM messages WHERE status = 'visible'"


def drained(archive: Archive, timeout: float = 600.0) -> float:
    """Wait until the spool has nothing waiting for the archiver; seconds waited."""
    from listgate.db import session_factory
    from listgate.spool import Spool

    engine = archive.engine()
    spool = Spool(engine)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            with session_factory(engine)() as session:
                if not spool.depth(session).pending:
                    break
            time.sleep(0.02)
    finally:
        spool.close()
        engine.dispose()
    return time.monotonic() - started


def _scalar(engine: Any, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def run(ctx: Context, archive: Archive, label: str, archiver: Proc) -> list[Row]:
    """The archiver's sustained rate, then freshness at half that rate."""
    rate, note = _sustained(ctx, archive, label, archiver)
    rows = [
        Row(NAME, f"{label}, archiver sustained (4 KB posts)", fmt_rate(rate), "", "", "", note)
    ]
    target = max(2.0, rate / 2)
    lat, sent, errors = _freshness(ctx, archive, target)
    if not lat:
        rows.append(
            Row.unavailable(NAME, f"{label}, freshness", f"no post became visible ({errors})")
        )
        return rows
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    missing = sent - len(lat)
    rows.append(
        Row(
            NAME,
            f"{label}, freshness 250 -> visible at {target:.0f} posts/s",
            f"p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}",
            "",
            f"p99 < {FRESH_GOAL:.0f} s",
            verdict(p99 < FRESH_GOAL and not missing),
            f"{len(lat)} posts; max {fmt_ms(max(lat))}"
            + (f"; {missing} never seen" if missing else "")
            + (f"; {errors} errors" if errors else ""),
        )
    )
    return rows


def _sustained(ctx: Context, archive: Archive, label: str, archiver: Proc) -> tuple[float, str]:
    """Stop the archiver, spool N posts, start a new one; time its first commit to its last."""
    archiver.stop()
    n = 60 if ctx.memo.get("tiny") else (500 if ctx.quick else 3000)
    engine = archive.engine()
    try:
        before = _scalar(engine, VISIBLE)
        res = run_load(archive.smtp_port, archive.address, 4, n, True, f"spool-{label}")
        proc = start_archiver(ctx, archive, f"archiver-{label}-sustained")
        first = last = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            now, done = time.monotonic(), _scalar(engine, VISIBLE) - before
            if done and first is None:
                first = (now, done)
            if done >= res.accepted:
                last = (now, done)
                break
            time.sleep(0.01)
    finally:
        engine.dispose()
    ctx.memo[f"archiver-{label}"] = proc
    if first is None or last is None or last[0] <= first[0]:
        return 0.0, f"the spool of {res.accepted} did not drain"
    rate = (last[1] - first[1]) / (last[0] - first[0])
    return rate, f"{res.accepted} spooled posts drained, timed from the archiver's first commit"


def _freshness(ctx: Context, archive: Archive, rate: float) -> tuple[list[float], int, int]:
    """(seconds from 250 to visible, posts answered 250, errors) for posts paced at `rate` per s."""
    duration = 1.0 if ctx.memo.get("tiny") else (5.0 if ctx.quick else 20.0)
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    errors = [0]
    stop = threading.Event()
    clients = 4
    period = clients / rate
    begin = time.perf_counter() + 0.2

    def client(k: int) -> None:
        conn = smtplib.SMTP("127.0.0.1", archive.smtp_port, timeout=60)
        try:
            t = begin + k * period / clients
            while t < begin + duration:
                time.sleep(max(0.0, t - time.perf_counter()))
                msgid, raw = make_post(archive.address, f"fresh{k}")
                try:
                    conn.sendmail("poster@example.org", [archive.address], raw)
                    answered[msgid] = time.perf_counter()
                except (smtplib.SMTPException, OSError):
                    errors[0] += 1
                t += period
        finally:
            conn.close()

    def reader() -> None:
        engine = archive.engine()
        last = _scalar(engine, "SELECT coalesce(max(id), 0) FROM messages")
        try:
            while not stop.is_set():
                with engine.connect() as conn:
                    for pk, msgid in conn.execute(
                        text("SELECT id, message_id FROM messages WHERE id > :last ORDER BY id"),
                        {"last": last},
                    ):
                        seen.setdefault(msgid, time.perf_counter())
                        last = pk
                time.sleep(0.005)
        finally:
            engine.dispose()

    poller = threading.Thread(target=reader, daemon=True)
    poller.start()
    senders = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(m not in seen for m in list(answered)):
        time.sleep(0.05)
    stop.set()
    poller.join(5)
    lat = [max(0.0, seen[m] - at) for m, at in answered.items() if m in seen]
    return lat, len(answered), errors[0]
