"""The `listgate` command: `up` supervises its children, bad settings give a one-line error.

`up` is run as a real subprocess with stand-in services (small Python loops), so the
signal handling and process groups are the real ones; no sockets are opened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from listgate import cli
from listgate.supervisor import Supervisor

SLEEPER = ("import os, signal, sys, time, pathlib\n"
           "{setup}\n"
           "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
           "time.sleep(600)\n")


def sleeper(pidfile: Path, setup: str = "") -> list[str]:
    """A stand-in service that records its pid and sleeps."""
    return ["-c", SLEEPER.format(setup=setup), str(pidfile)]


def alive(pid: int) -> bool:
    """True while pid runs (a zombie waiting for its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll predicate until it is true or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def start_up(tmp_path: Path, services: dict[str, list[str]]) -> subprocess.Popen[str]:
    """Run `listgate up --no-demo` in a subprocess with the given stand-in services."""
    (tmp_path / "services.json").write_text(json.dumps(services))
    script = ("import json, sys\nfrom listgate import cli\n"
              "cli.SERVICES = json.load(open(sys.argv[1]))\n"
              "cli.main(['up', '--no-demo'])\n")
    env = {**os.environ, "LISTGATE_DATA_DIR": str(tmp_path / "var"), "LISTGATE_SECRET_KEY": "x" * 32,
           "LISTGATE_SMTP_LISTEN": "127.0.0.1:1", "LISTGATE_WEB_LISTEN": "127.0.0.1:1"}
    return subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "services.json")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def pids(*files: Path) -> list[int]:
    """Wait for the stand-ins to write their pids; return them."""
    assert wait_until(lambda: all(f.exists() and f.read_text() for f in files)), "services did not start"
    return [int(f.read_text()) for f in files]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_up_stops_every_child_on_ctrl_c_or_sigterm(tmp_path: Path, sig: int) -> None:
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    proc = start_up(tmp_path, {"gateway": sleeper(a), "worker": sleeper(b)})
    children = pids(a, b)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped gateway" in out and "stopped worker" in out
    assert "Traceback" not in out
    assert not any(alive(pid) for pid in children)


def test_when_one_child_dies_up_names_it_and_stops_the_rest(tmp_path: Path) -> None:
    a = tmp_path / "a.pid"
    dying = ["-c", "import time; time.sleep(0.5); raise SystemExit(3)"]
    proc = start_up(tmp_path, {"gateway": sleeper(a), "web": dying})
    (survivor,) = pids(a)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "web exited with status 3; stopping the others" in out
    assert "stopped gateway" in out
    assert not alive(survivor)


def test_children_stop_when_up_is_killed_outright(tmp_path: Path) -> None:
    a = tmp_path / "a.pid"
    proc = start_up(tmp_path, {"worker": sleeper(a)})
    (child,) = pids(a)
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_until(lambda: not alive(child), timeout=10), "an orphaned child kept running"


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    a = tmp_path / "a.pid"
    stubborn = sleeper(a, setup="signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    lines: list[str] = []
    sup = Supervisor({"beat": stubborn}, echo=lines.append)
    sup.start()
    try:
        (child,) = pids(a)
    finally:
        sup.stop_all(grace=0.5)
    assert any(line.startswith("beat did not stop") for line in lines), lines
    assert not alive(child)


@pytest.mark.parametrize(("variable", "value"), [
    ("LISTGATE_SMTP_LISTEN", "no-port"),
    ("LISTGATE_WEB_LISTEN", "127.0.0.1:99999"),
    ("LISTGATE_DATABASE_URL", "listgate.sqlite3"),
    ("LISTGATE_OUTBOUND", "ftp://relay"),
    ("LISTGATE_MAX_MESSAGE_SIZE", "lots"),
    ("LISTGATE_LOG_LEVEL", "chatty"),
    ("LISTGATE_SECRET_KEY", "short"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    env = {"LISTGATE_DATA_DIR": str(tmp_path / "var"), "LISTGATE_SECRET_KEY": "x" * 32, variable: value}
    for command in (["lists", "show"], ["up"], ["status"], ["gateway"], ["db", "upgrade"]):
        if command[0] not in cli.main.commands:
            continue
        result = CliRunner().invoke(cli.main, command, env=env)
        assert result.exit_code == 1, (command, result.output)
        assert variable in result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["up"], ["lists", "show"], ["db", "upgrade"]])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    env = {"LISTGATE_DATA_DIR": str(tmp_path / "var"), "LISTGATE_SECRET_KEY": "x" * 32,
           "LISTGATE_DATABASE_URL": "postgresql://lg:pw@127.0.0.1:1/lg"}
    result = CliRunner().invoke(cli.main, command, env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "127.0.0.1" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output and "pw@" not in result.output
