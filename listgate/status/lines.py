"""The lines of `listgate status`: one per service or count, naming what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listgate import plurals
from listgate.gateways import GatewayReport
from listgate.states import DeliveryState
from listgate.status import processes
from listgate.status.failed import FAILED_WINDOW, FailedPost
from listgate.status.metrics import RECENT_FAILURE_HOURS, Metrics
from listgate.status.state import Status


def _ago(when: datetime, now: datetime) -> str:
    seconds = int((now - when).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{plurals.count(n, unit)} ago"
    return f"{plurals.count(max(seconds, 0), 'second')} ago"


def _recent_failures(m: Metrics, now: datetime) -> str:
    """How many of the outbox's failures are recent (trouble), and the latest one."""
    if not m.outbox_failed:
        return ""
    if not m.outbox_failed_recent or m.outbox_last_failed_at is None:
        return f" (none in the last {RECENT_FAILURE_HOURS} h)"
    return (
        f" ({m.outbox_failed_recent} in the last {RECENT_FAILURE_HOURS} h; the last, "
        f"{_ago(m.outbox_last_failed_at, now)}: {m.outbox_last_failure})"
    )


def _failed_line(failed: list[FailedPost], now: datetime) -> str:
    line = (
        f"failed     {plurals.count(len(failed), 'post')} refused by the relay "
        f"in the last {FAILED_WINDOW.days} days"
    )
    if failed:
        newest = failed[0]
        line += (
            f" (latest {_ago(newest.last, now)}: post {newest.message_pk} "
            f'"{newest.subject[:60]}": {newest.reason[:120]})'
        )
    return line


def render(status: Status, now: datetime | None = None) -> list[str]:
    """Human-readable lines for `listgate status`."""
    now = now or datetime.now(UTC)
    lines = []
    revision = f"revision {status.revision or 'none'}"
    if status.database_ok and status.revision == status.head:
        lines.append(f"database   ok     {status.database} ({revision}, up to date)")
    elif status.database_ok:
        lines.append(
            f"database   BEHIND {status.database} ({revision}, code expects {status.head}: "
            "run `listgate db upgrade`)"
        )
    else:
        lines.append(f"database   DOWN   {status.database}")
    if status.broker_ok:
        waiting = ", ".join(f"{name}: {n} waiting" for name, n in status.broker_queue.items())
        lines.append(f"broker     ok     {status.broker} ({waiting})")
    else:
        lines.append(f"broker     DOWN   {status.broker}")
    m = status.metrics
    if m is not None:
        lag = (
            f", oldest {_ago(now - timedelta(seconds=m.queue_lag_seconds), now)}"
            if m.outbox_pending
            else ""
        )
        sp = m.spool
        waiting = f", oldest {sp.oldest_seconds:.1f} s old" if sp.pending else ""
        failed = (
            f"; {plurals.count(sp.failed, 'mail')} FAILED to archive "
            "(`listgate spool show`, `listgate spool retry`)"
            if sp.failed
            else ""
        )
        lines.append(f"spool      {sp.pending} waiting for the archiver{waiting}{failed}")
        lines.append(
            f"queue      {plurals.count(m.outbox_pending, 'outbox entry')} not done{lag}, "
            f"{m.outbox_failed} failed for good{_recent_failures(m, now)}"
        )
        d = m.deliveries
        unsent = d.get(DeliveryState.PENDING, 0) + d.get(DeliveryState.SENDING, 0)
        lines.append(
            f"deliveries {d.get(DeliveryState.SENT, 0)} sent, {unsent} pending, "
            f"{d.get(DeliveryState.DEFERRED, 0)} deferred, "
            f"{d.get(DeliveryState.BOUNCED, 0)} bounced, "
            f"{d.get(DeliveryState.REFUSED, 0)} refused"
        )
        lines.append(
            f"mail       {m.received} received, {sum(m.stored.values())} stored, "
            f"{sum(m.refused.values())} refused"
        )
        lines.append(
            f"moderators {plurals.count(m.not_posted, 'mail')} accepted and not posted, "
            f"{plurals.count(m.awaiting_approval, 'subscription request')} awaiting approval"
        )
        last = (
            f"{m.last_received:%Y-%m-%d %H:%M:%S} UTC ({_ago(m.last_received, now)})"
            if m.last_received
            else "never"
        )
        lines.append(f"last mail  {last}")
        lines.append(_failed_line(m.failed, now))
        lines.extend(_gateway_lines(m.gateways, now))
    if status.deferring and m is not None:
        retry = f"; next try {_in(m.next_retry, now)}" if m.next_retry else ""
        # Not status.outbound: this command's environment may not be the workers' (another
        # terminal).
        lines.append(
            f"relay      DEFERRING {plurals.count(status.deferring, 'copy')} "
            f"{'waits' if status.deferring == 1 else 'wait'} for the relay, which said: "
            f"{m.last_deferral or 'nothing recorded'}{retry}"
        )
    lines.extend(processes.lines(status.processes))
    problems = status.problems
    if problems:
        lines.append(f"trouble    {plurals.count(len(problems), 'problem')}: {'; '.join(problems)}")
    return lines


def _in(when: datetime, now: datetime) -> str:
    seconds = int((when - now).total_seconds())
    return "now" if seconds <= 0 else f"in {seconds} s"


def _gateway_lines(found: list[GatewayReport], now: datetime) -> list[str]:
    """A line per gateway: its connections and limits, or that it is dead or silent (trouble)."""
    out = []
    for r in found:
        ago = max(0, int((now - r.seen).total_seconds()))
        counts = (
            f"{r.connections} of {r.limit} connections open (a network's share {r.network_share})"
        )
        if r.up(now):
            out.append(f"gateway    ok     {r.name}: {counts}, said {ago} s ago")
            continue
        heard = f"last heard from {_ago(r.seen, now)} ({r.seen:%Y-%m-%d %H:%M:%S} UTC)"
        what = (
            f"DEAD   {r.name}: process {r.pid} is gone (killed or crashed), {heard}"
            if r.gone
            else f"SILENT {r.name}: {heard}: killed, crashed or hangs"
        )
        out.append(
            f"gateway    {what}; start it again, or `listgate gateways forget {r.name}` "
            "if it is not coming back"
        )
    return out
