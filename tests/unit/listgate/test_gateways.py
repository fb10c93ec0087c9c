"""Each gateway's report of its connections over time: set (not added) at each report, silent
once it stops reporting without removing it (killed), forgotten a day later; the status lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from listgate import counters, gateways
from listgate.db import transaction
from listgate.status import Status, gather_metrics, render

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _status_lines(db: sessionmaker[Session], now: datetime) -> list[str]:
    with db() as s:
        metrics = gather_metrics(s, now=now)
    lines = render(Status(database="db", database_ok=True, metrics=metrics), now=now)
    return [line for line in lines if line.startswith("gateway ")]


def test_reports_over_a_gateways_life(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        counters.bump(s, counters.REFUSED, "too-many-connections", 3)  # a counter beside them
        gateways.report(s, "a/1/0.0.0.0:25", 7, 100, 25, T0)
        gateways.report(s, "b/2/0.0.0.0:25", 1, 100, 25, T0)
    with transaction(db) as s:  # a's count changes: set, not added
        gateways.report(s, "a/1/0.0.0.0:25", 4, 100, 25, T0 + timedelta(seconds=5))
    assert _status_lines(db, T0 + timedelta(seconds=7)) == [
        "gateway    ok     a/1/0.0.0.0:25: 4 of 100 connections open (a network's share 25), "
        "said 2 s ago",
        "gateway    ok     b/2/0.0.0.0:25: 1 of 100 connections open (a network's share 25), "
        "said 7 s ago",
    ]
    # b is killed (no report any more); a goes on reporting, then stops cleanly
    later = T0 + gateways.SILENT + timedelta(seconds=30)
    with transaction(db) as s:
        gateways.report(s, "a/1/0.0.0.0:25", 0, 100, 25, later)
    lines = _status_lines(db, later)
    assert lines[0].startswith("gateway    ok     a/1/0.0.0.0:25: 0 of 100 connections open")
    assert lines[1] == (
        "gateway    SILENT b/2/0.0.0.0:25: not heard from since 2026-11-30 12:00:00 UTC "
        "(90 s ago: stopped without saying so, or hangs); it had 1 of 100 connections open "
        "(a network's share 25)"
    )
    with transaction(db) as s:
        gateways.forget(s, "a/1/0.0.0.0:25")
        assert gateways.forget_silent(s, later) == []  # b: silent, not yet for a day
    assert [line.split()[1] for line in _status_lines(db, later)] == ["SILENT"]
    with transaction(db) as s:  # a gateway starting a day later forgets b
        assert gateways.forget_silent(s, T0 + timedelta(days=1, seconds=1)) == ["b/2/0.0.0.0:25"]
    assert _status_lines(db, later) == []
    with db() as s:  # the counters beside them are untouched
        assert counters.values(s, counters.REFUSED) == {"too-many-connections": 3}
