"""The `listgate` command: `up` supervises its children, bad settings give a one-line error.

`up` is run as a real subprocess with stand-in services (small Python loops), so the
signal handling and process groups are the real ones; no sockets are opened.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from listgate import cli
from listgate.supervisor import Service, Supervisor
from tests.support.config import free_port

SLEEPER = (
    "import os, signal, sys, time, pathlib\n"
    "{setup}\n"
    "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
    "time.sleep(600)\n"
)
# A stand-in that says READY=1 the way the real
# services do (once the file argv[2] exists, if given).
NOTIFIER = (
    "import os, sys, time, pathlib\n"
    "from listgate.config import Settings\n"
    "from listgate.readiness import notify_ready\n"
    "gate = sys.argv[2] if len(sys.argv) > 2 else ''\n"
    "while gate and not os.path.exists(gate): time.sleep(0.05)\n"
    "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
    "notify_ready(Settings.from_env())\n"
    "time.sleep(600)\n"
)


def sleeper(pidfile: Path, setup: str = "") -> list[str]:
    """A stand-in service that records its pid and sleeps (it never says READY=1)."""
    return ["-c", SLEEPER.format(setup=setup), str(pidfile)]


def notifier(pidfile: Path, gate: Path | None = None) -> list[str]:
    """A stand-in service that records its pid and says READY=1 (after `gate` exists)."""
    return ["-c", NOTIFIER, str(pidfile)] + ([str(gate)] if gate else [])


def alive(pid: int) -> bool:
    """True while pid runs (a zombie waiting for its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> bool:
    """Poll predicate until it is true or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def up_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `listgate up` under test: its own data dir and free ports."""
    return {
        **os.environ,
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": "x" * 32,
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
        **extra,
    }


def start_up(
    tmp_path: Path, services: dict[str, list[str]], setup: str = "", **env: str
) -> subprocess.Popen[str]:
    """Run `listgate up --no-demo` in a subprocess with the given stand-in services (after the
    Python statements of setup).
    """
    (tmp_path / "services.json").write_text(json.dumps(services))
    script = (
        f"import json, sys\nfrom listgate import cli, launch\n{setup}\n"
        "from listgate.supervisor import Service\n"
        "launch.SERVICES = tuple(Service(n, tuple(a)) for n, a in "
        "json.load(open(sys.argv[1])).items())\n"
        "cli.main(['up', '--no-demo'])\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "services.json")],
        env=up_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def pids(*files: Path) -> list[int]:
    """Wait for the stand-ins to write their pids; return them."""
    assert wait_until(lambda: all(f.exists() and f.read_text() for f in files)), (
        "services did not start"
    )
    return [int(f.read_text()) for f in files]


def status_of(tmp_path: Path) -> str:
    """What `listgate status` prints for the data dir of start_up."""
    return (
        CliRunner()
        .invoke(
            cli.main,
            ["status"],
            env={"LISTGATE_DATA_DIR": str(tmp_path / "var"), "LISTGATE_SECRET_KEY": "x" * 32},
        )
        .output
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_up_stops_every_child_on_ctrl_c_or_sigterm(tmp_path: Path, sig: int) -> None:
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    proc = start_up(tmp_path, {"gateway": sleeper(a), "worker": sleeper(b)})
    children = pids(a, b)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped gateway, worker" in out
    assert "Traceback" not in out
    assert not any(alive(pid) for pid in children)


def test_a_child_killed_outright_is_restarted_and_status_says_so(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    proc = start_up(tmp_path, {"gateway": notifier(a), "worker": notifier(b)})
    try:
        first, other = pids(a, b)
        assert wait_until(lambda: " ok " in status_of(tmp_path)), status_of(tmp_path)
        a.unlink()
        os.kill(first, signal.SIGKILL)
        (second,) = pids(a)
        assert second != first and alive(second) and alive(other)
        assert wait_until(
            lambda: "restarted 1 time, last exited with signal 9 (SIGKILL)" in status_of(tmp_path)
        ), status_of(tmp_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert (
        f"gateway (pid {first}) exited with signal 9 (SIGKILL)" in out
        and "restarting it in 1s" in out
    )
    assert f"restarted gateway (pid {second}, restart 1)" in out
    assert not alive(second) and not alive(other)


def test_a_child_that_keeps_dying_is_restarted_with_growing_pauses(tmp_path: Path) -> None:
    a = tmp_path / "a.pid"
    dying = ["-c", "import time; time.sleep(0.2); raise SystemExit(3)"]
    proc = start_up(tmp_path, {"gateway": sleeper(a), "web": dying})
    (survivor,) = pids(a)
    assert wait_until(
        lambda: (
            "restarting in 4.0 s" in status_of(tmp_path)
            or "restarting in 3." in status_of(tmp_path)
        ),
        timeout=20,
    ), status_of(tmp_path)
    text = status_of(tmp_path)
    assert "web        DOWN   exited with status 3" in text
    assert (
        CliRunner()
        .invoke(
            cli.main,
            ["status"],
            env={"LISTGATE_DATA_DIR": str(tmp_path / "var"), "LISTGATE_SECRET_KEY": "x" * 32},
        )
        .exit_code
        == 1
    )
    assert alive(survivor) and proc.poll() is None, "up stopped although nobody asked it to"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert (
        "restarting it in 1s" in out
        and "restarting it in 2s" in out
        and "restarting it in 4s" in out
    )
    assert not alive(survivor)


def test_up_says_it_is_up_only_once_every_child_is_ready(tmp_path: Path) -> None:
    a, b, gate = tmp_path / "a.pid", tmp_path / "b.pid", tmp_path / "gate"
    proc = start_up(tmp_path, {"gateway": notifier(a), "web": notifier(b, gate)})
    lines: list[str] = []
    try:
        pids(a)
        time.sleep(1.5)  # the gateway is ready; the web child waits for the gate
        gate.touch()
        pids(b)
        assert proc.stdout is not None
        while not any("listgate is up" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert b.stat().st_mtime <= time.time()
    assert sum("listgate is up" in line for line in lines) == 1


def test_a_taken_port_is_reported_first_naming_port_and_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        a = tmp_path / "a.pid"
        proc = start_up(tmp_path, {"gateway": sleeper(a)}, LISTGATE_SMTP_LISTEN=f"127.0.0.1:{port}")
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert out.strip() == (
        f"Error: port {port} on 127.0.0.1 is already in use by another program: stop it, or set "
        "LISTGATE_SMTP_LISTEN to a free "
        f"HOST:PORT, for example LISTGATE_SMTP_LISTEN=127.0.0.1:{port + 1}"
    )
    assert not a.exists(), "a service started although its port was taken"


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
    sup = Supervisor([Service("beat", tuple(stubborn))], echo=lines.append)
    sup.start()
    try:
        (child,) = pids(a)
    finally:
        sup.stop_all(grace=0.5)
    assert any(line.startswith("beat did not stop") for line in lines), lines
    assert not alive(child)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LISTGATE_SMTP_LISTEN", "no-port"),
        ("LISTGATE_WEB_LISTEN", "127.0.0.1:99999"),
        ("LISTGATE_DATABASE_URL", "listgate.sqlite3"),
        ("LISTGATE_OUTBOUND", "ftp://relay"),
        ("LISTGATE_MAX_MESSAGE_SIZE", "lots"),
        ("LISTGATE_LOG_LEVEL", "chatty"),
        ("LISTGATE_SECRET_KEY", "short"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": "x" * 32,
        variable: value,
    }
    for command in (["lists", "show"], ["up"], ["status"], ["gateway"], ["db", "upgrade"]):
        if command[0] not in cli.main.commands:
            continue
        result = CliRunner().invoke(cli.main, command, env=env)
        assert result.exit_code == 1, (command, result.output)
        assert variable in result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["up"], ["lists", "show"], ["db", "upgrade"]])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": "x" * 32,
        "LISTGATE_DATABASE_URL": "postgresql://lg:pw@127.0.0.1:1/lg",
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
    }
    result = CliRunner().invoke(cli.main, command, env=env)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "127.0.0.1" in result.output
    assert (
        result.output.count("\n") == 1
        and "Traceback" not in result.output
        and "pw@" not in result.output
    )


def test_a_wrong_celery_option_is_one_line_and_a_failure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "listgate.cli", "worker", "--no-such-option"],
        env=up_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "worker: No such option '--no-such-option'."
    assert "Traceback" not in done.stderr
