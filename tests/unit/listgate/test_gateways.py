"""Each gateway's report of its connections over time: set (not added) at each report, silent
once it stops reporting without removing it (killed), dead at once when its process on this host
is gone, trouble until replaced or forgotten (`listgate gateways forget`); the status lines."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner, Result
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from listgate import counters, gateways
from listgate.cli import main
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Counter
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
        "gateway    SILENT b/2/0.0.0.0:25: last heard from 1 minute ago (2026-11-30 12:00:00 "
        "UTC): killed, crashed or hangs; start it again, or "
        "`listgate gateways forget b/2/0.0.0.0:25` if it is not coming back"
    )
    with transaction(db) as s:
        gateways.forget(s, "a/1/0.0.0.0:25")  # a stops cleanly: gone, and no trouble
    # b's report stays (and so does the trouble) however long nobody answers it
    week = T0 + timedelta(days=7)
    assert _status_lines(db, week) == [
        "gateway    SILENT b/2/0.0.0.0:25: last heard from 7 days ago (2026-11-30 12:00:00 "
        "UTC): killed, crashed or hangs; start it again, or "
        "`listgate gateways forget b/2/0.0.0.0:25` if it is not coming back"
    ]
    with transaction(db) as s:  # a gateway on another host, or another address, is no answer
        assert gateways.forget_replaced(s, "c/9/0.0.0.0:25") == []
        assert gateways.forget_replaced(s, "b/9/0.0.0.0:587") == []
    assert [line.split()[1] for line in _status_lines(db, week)] == ["SILENT"]
    with transaction(db) as s:  # one started again on b's host and address replaces it
        assert gateways.forget_replaced(s, "b/3/0.0.0.0:25") == ["b/2/0.0.0.0:25"]
    assert _status_lines(db, week) == []
    with db() as s:  # the counters beside them are untouched
        assert counters.values(s, counters.REFUSED) == {"too-many-connections": 3}


def _gone_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_gateway_whose_process_is_gone_here_is_dead_at_once(db: sessionmaker[Session]) -> None:
    host, now = socket.gethostname(), datetime.now(UTC)
    dead, alive = f"{host}/{_gone_pid()}/127.0.0.1:25", f"{host}/{os.getpid()}/127.0.0.1:587"
    with transaction(db) as s:
        gateways.report(s, dead, 2, 100, 25, now)
        gateways.report(s, alive, 1, 100, 25, now)
    with db() as s:
        metrics = gather_metrics(s, now=now)
    state = Status(database="db", database_ok=True, broker_ok=True, metrics=metrics)
    assert state.gateways_down == [dead] and not state.ok
    assert render(state, now=now)[-1] == f"trouble    1 problem: gateway {dead} DEAD"
    pid = dead.split("/")[1]
    shown = [line.split()[1:3] for line in render(state, now=now) if line.startswith("gateway ")]
    assert sorted(shown) == [["DEAD", f"{dead}:"], ["ok", f"{alive}:"]]
    assert (
        f"gateway    DEAD   {dead}: process {pid} is gone (killed or crashed), last heard from "
        f"0 seconds ago ({now:%Y-%m-%d %H:%M:%S} UTC); start it again, or "
        f"`listgate gateways forget {dead}` if it is not coming back"
    ) in render(state, now=now)


def test_a_pid_of_another_pid_namespace_is_not_looked_for_here(db: sessionmaker[Session]) -> None:
    """A gateway in a container that shares the host's name: its pid means nothing here."""
    name, now = f"{socket.gethostname()}/{_gone_pid()}/127.0.0.1:25", datetime.now(UTC)
    with transaction(db) as s:
        gateways.report(s, name, 0, 100, 25, now)
        s.execute(
            update(Counter)
            .where(Counter.name == gateways.PID_NAMESPACE, Counter.label == name)
            .values(value=Counter.value + 1)
        )
    with db() as s:
        (found,) = gateways.reports(s)
    assert not found.gone and found.up(now)
    assert not found.up(now + gateways.SILENT + timedelta(seconds=1))  # its silence still tells


def test_a_silent_gateway_fails_status(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        gateways.report(s, "elsewhere/7/0.0.0.0:25", 0, 100, 25, T0)
    for after, ok in ((gateways.SILENT, True), (gateways.SILENT + timedelta(seconds=1), False)):
        with db() as s:
            metrics = gather_metrics(s, now=T0 + after)
        state = Status(database="db", database_ok=True, broker_ok=True, metrics=metrics)
        assert state.ok is ok, after
    assert state.problems == ["gateway elsewhere/7/0.0.0.0:25 SILENT"]


def _forget(settings: Settings, *args: str) -> Result:
    env = {
        "LISTGATE_DATA_DIR": str(settings.data_dir),
        "LISTGATE_DATABASE_URL": settings.database_url,
        "LISTGATE_SECRET_KEY": settings.secret_key,
    }
    return CliRunner().invoke(main, ["gateways", "forget", *args], env=env)


def test_gateways_forget_removes_a_gateway_that_is_not_coming_back(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    running = f"{socket.gethostname()}/{os.getpid()}/127.0.0.1:25"
    with transaction(db) as s:
        gateways.report(s, "old/1/0.0.0.0:25", 0, 100, 25, T0)
        gateways.report(s, "older/2/0.0.0.0:25", 0, 100, 25, T0)
        gateways.report(s, running, 0, 100, 25, now)
    result = _forget(settings, "nosuch/1/0.0.0.0:25")
    assert result.exit_code == 1
    assert "no gateway reports as nosuch/1/0.0.0.0:25 (`listgate status` names" in result.output
    result = _forget(settings, running)
    # heard from a few seconds ago (how many depends on how busy the machine is: not asserted)
    assert result.exit_code == 1 and re.search(
        rf"{re.escape(running)} is running \(heard from \d+ s ago\)", result.output
    ), result.output
    assert _forget(settings).exit_code == 2  # neither names nor --down
    result = _forget(settings, "old/1/0.0.0.0:25")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "forgot gateway old/1/0.0.0.0:25, last heard from 2026-11-30 12:00:00 UTC\n"
        "1 gateway forgotten\n"
    )
    with db() as s:
        assert [r.name for r in gateways.reports(s)] == ["older/2/0.0.0.0:25", running]
    result = _forget(settings, "--down")
    assert result.exit_code == 0 and result.output.endswith("1 gateway forgotten\n")
    with db() as s:
        assert [r.name for r in gateways.reports(s)] == [running]


def test_gateways_forget_of_an_empty_name_says_a_name_is_needed(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    """A script's empty variable (`listgate gateways forget "$NAME"`) names no gateway: the
    answer says so, rather than "no gateway reports as  (…" with a blank name, and forgets none."""
    with transaction(db) as s:
        gateways.report(s, "old/1/0.0.0.0:25", 0, 100, 25, T0)
    for blank in ("", "  "):
        result = _forget(settings, "old/1/0.0.0.0:25", blank)
        assert result.exit_code == 2, result.output
        assert "a gateway's name is empty: give it as `listgate status` names it" in (
            result.output
        ), result.output
    with db() as s:
        assert [r.name for r in gateways.reports(s)] == ["old/1/0.0.0.0:25"]
