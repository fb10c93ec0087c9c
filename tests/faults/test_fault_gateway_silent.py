"""A gateway killed with SIGKILL (its report left behind) fails `listgate status`, naming it.

`listgate status` used to show such a gateway as SILENT after a minute and exit 0 all the same,
so a monitor running it never heard of the crash. Here a real gateway process is killed, and a
real `listgate status` exits 1 at once with a line naming the gateway, how long since it was
heard from and what to do; a gateway started again on the same address replaces the dead one's
report, and one stopped normally removes its own: neither is trouble. One on another address
is no answer: the operator forgets the dead one (`listgate gateways forget`). One that hangs
(SIGSTOP) is not trouble at once, SILENT once a minute has passed without a report (its
last report dated back, not waited for), and ok again when it goes on.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from listgate import gateways
from listgate.db import transaction
from listgate.models import Counter
from tests.support.config import ROOT, free_port, prepare, site_env, wait_until
from tests.support.processes import Service, gateway

pytestmark = [pytest.mark.integration, pytest.mark.soak]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`listgate ARGS` as a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "listgate.cli", *args],
        check=False,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _status(env: dict[str, str]) -> tuple[int, list[str]]:
    """`listgate status` as a process of its own: (exit code, its gateway lines)."""
    done = _cli(env, "status")
    return done.returncode, [
        line for line in done.stdout.splitlines() if line.startswith("gateway ")
    ]


def _started(tmp_path: Path) -> tuple[dict[str, str], Service]:
    """A site's environment and its gateway, started."""
    env = site_env(tmp_path)
    prepare(env, "dev")
    return env, gateway(env, tmp_path / "gateway.log").start()


def _reporting(env: dict[str, str], gw: Service, listen: str) -> str:
    """The name of gw (listening on listen) once `listgate status` shows its report."""
    name = f"{socket.gethostname()}/{gw.process.pid}/{listen}"
    wait_until(lambda: name in "".join(_status(env)[1]), what=f"the report of {name}")
    return name


@pytest.mark.long(29)
def test_a_gateway_killed_fails_status_until_one_replaces_it(tmp_path: Path) -> None:
    env, gw = _started(tmp_path)
    try:
        first = _reporting(env, gw, env["LISTGATE_SMTP_LISTEN"])
        code, lines = _status(env)
        assert code == 0, lines
        assert [line.split()[1] for line in lines] == ["ok"]

        gw.kill()  # SIGKILL: no chance to remove its report
        code, lines = _status(env)
        assert code == 1, f"a gateway killed must fail `listgate status`: {lines}"
        assert len(lines) == 1, lines
        pid = first.split("/")[1]
        assert re.fullmatch(
            rf"gateway +DEAD +{re.escape(first)}: process {pid} is gone \(killed or crashed\), "
            r"last heard from \d+ seconds? ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); "
            r"start it again, "
            rf"or `listgate gateways forget {re.escape(first)}` if it is not coming back",
            lines[0],
        ), lines[0]

        gw.start()  # the same address again: the dead one's report goes
        second = f"{socket.gethostname()}/{gw.process.pid}/{env['LISTGATE_SMTP_LISTEN']}"
        assert second != first
        wait_until(lambda: _status(env)[0] == 0, what="status ok once a gateway replaced it")
        code, lines = _status(env)
        assert [line.split()[:3] for line in lines] == [["gateway", "ok", f"{second}:"]]
    finally:
        gw.stop()  # stopped normally: its report goes with it, and that is no trouble
    assert _status(env) == (0, [])


@pytest.mark.long(22)
def test_a_gateway_killed_and_not_coming_back_is_forgotten_by_the_operator(
    tmp_path: Path,
) -> None:
    env, gw = _started(tmp_path)
    moved = {**env, "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}"}
    other = gateway(moved, tmp_path / "other.log")
    try:
        dead = _reporting(env, gw, env["LISTGATE_SMTP_LISTEN"])
        gw.kill()
        other.start()  # on another address: no answer for the one killed
        live = _reporting(env, other, moved["LISTGATE_SMTP_LISTEN"])
        code, lines = _status(env)
        assert code == 1 and sorted(line.split()[1] for line in lines) == ["DEAD", "ok"], lines

        forgot = _cli(env, "gateways", "forget", dead)
        assert forgot.returncode == 0, forgot.stderr
        assert forgot.stdout.splitlines()[-1] == "1 gateway forgotten"
        code, lines = _status(env)
        assert code == 0 and [line.split()[:3] for line in lines] == [["gateway", "ok", f"{live}:"]]
    finally:
        other.stop()
        gw.stop()


@pytest.mark.long(21)
def test_a_gateway_that_hangs_is_silent_after_a_minute_and_ok_when_it_goes_on(
    tmp_path: Path,
) -> None:
    env = site_env(tmp_path)
    _, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    try:
        name = _reporting(env, gw, env["LISTGATE_SMTP_LISTEN"])
        os.killpg(gw.process.pid, signal.SIGSTOP)  # it hangs: its process is still there
        assert _status(env)[0] == 0  # not trouble yet: heard from lately, and not gone
        # A minute passes without a report: the stopped gateway writes nothing, so its last
        # report is dated back by SILENT (and a second) instead of waiting a minute.
        with transaction(db) as session:
            session.execute(
                update(Counter)
                .where(Counter.name == gateways.SEEN, Counter.label == name)
                .values(value=Counter.value - int(gateways.SILENT.total_seconds()) - 1)
            )
        code, lines = _status(env)
        assert code == 1, lines
        assert re.fullmatch(
            rf"gateway +SILENT +{re.escape(name)}: last heard from 1 minute ago "
            r"\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\): killed, crashed or hangs; start it again, "
            rf"or `listgate gateways forget {re.escape(name)}` if it is not coming back",
            lines[0],
        ), lines
        os.killpg(gw.process.pid, signal.SIGCONT)  # its next report (a heartbeat) clears it
        wait_until(
            lambda: _status(env)[0] == 0,
            timeout=gateways.HEARTBEAT + 30,
            what="status ok once the gateway goes on",
        )
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            os.killpg(gw.process.pid, signal.SIGCONT)
        gw.stop()
