"""README's quick start, followed literally by a newcomer's shell: its commands are read from
README.md.

The commands run with bash in a directory laid out like a checkout (Makefile, lock files and
the already-installed .venv linked in), so `make run` finds everything installed and `var/`
is this test's own. Only the ports differ from a newcomer's: LISTGATE_SMTP_LISTEN and
LISTGATE_WEB_LISTEN point at free ports (other tests may hold 2525 and 8080), and the sink's
example port 1025 is replaced by a free one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from listgate.supervisor import read_state, state_file
from tests.support.config import free_port, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCREEN_ROWS, SCREEN_COLUMNS = (
    24,
    120,
)  # a terminal window; `make run`'s startup output must fit in it


def quick_start() -> list[str]:
    """The shell lines of README's quick start, in order, without trailing comments."""
    text = (ROOT / "README.md").read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        lines += [
            re.sub(r"\s{2,}#.*$", "", line).strip() for line in block.splitlines() if line.strip()
        ]
    return lines


def command(lines: list[str], pattern: str) -> str:
    """The one quick-start line matching pattern."""
    found = [line for line in lines if re.fullmatch(pattern, line)]
    assert len(found) == 1, f"README's quick start should have one line like {pattern!r}: {lines}"
    return found[0]


@dataclass
class Shell:
    """A terminal in the checkout: runs README lines with bash."""

    cwd: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self, line: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a line to completion."""
        return subprocess.run(
            ["bash", "-c", line],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # callers read the status and the output
        )

    def start(self, line: str, log: Path) -> subprocess.Popen[str]:
        """Start a long-running line (make run, the
        sink) in its own process group, output to log.
        """
        with open(log, "w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", line],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def ctrl_c(self, proc: subprocess.Popen[str]) -> int:
        """What Ctrl-C does: SIGINT to the foreground process group; its exit status."""
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    """A checkout-like directory and a newcomer's environment (no LISTGATE_* but the two ports)."""
    checkout = tmp_path / "listgate"
    checkout.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md", "requirements", ".venv"):
        (checkout / name).symlink_to(ROOT / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LISTGATE_", "VIRTUAL_ENV", "MAKE"))
    }
    env.update(
        LISTGATE_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
        LISTGATE_WEB_LISTEN=f"127.0.0.1:{free_port()}",
        PYTHONUNBUFFERED="1",
    )
    sh = Shell(checkout, env)
    # `make run` must find .venv installed: installing from this checkout would point the shared
    # .venv's editable install at a directory without the sources.
    if sh.run("make -q install-run").returncode != 0:
        pytest.fail(
            "the .venv is not installed from the current lock: run `make install` first",
            pytrace=False,
        )
    yield sh
    for proc in sh.procs:
        if proc.poll() is None:
            sh.ctrl_c(proc)


def get(url: str) -> str:
    """The body of a GET."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def copies(outbound: Path, rcpt: str, subject: str) -> list[str]:
    """Files in the Maildir's new/ for rcpt with this subject."""
    found = []
    for path in sorted((outbound / "new").glob("*")) if (outbound / "new").exists() else []:
        text = path.read_text(errors="replace")
        if f"Delivered-To: {rcpt}\n" in text and f"\nSubject: {subject}\n" in text:
            found.append(text)
    return found


def wait_for_up(log: Path, proc: subprocess.Popen[str]) -> list[str]:
    """Wait until `make run` printed its whole summary; the output up to there."""

    def done() -> bool:
        assert proc.poll() is None, log.read_text()
        return "then read it at" in log.read_text()

    assert wait_until(done, 120), log.read_text()
    time.sleep(0.5)  # the summary's last lines (a note) follow at once
    lines = log.read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if "then read it at" in line) + 1
    while end < len(lines) and not re.match(
        r"\d{4}-\d\d-\d\d ", lines[end]
    ):  # up to the first log line
        end += 1
    return lines[:end]


def posted_command(startup: list[str]) -> str:
    """The post command the summary printed."""
    printed = [line.strip() for line in startup if line.strip().startswith("python3 -c")]
    assert len(printed) == 1, startup
    return printed[0]


def check_api_examples(web: str) -> None:
    """Every example of README's JSON API section answers, with the values the README shows."""
    text = (ROOT / "README.md").read_text().split("\n## JSON API\n", 1)[1].split("\n## ", 1)[0]
    for path, shown in re.findall(
        r"^curl -s '?http://127\.0\.0\.1:8080(\S+?)'?\n# (.*)$", text, re.MULTILINE
    ):
        body = json.dumps(json.loads(get(web + path)))
        for pair in re.findall(r'"\w+": (?:"[^".]*"|\d+|true|false|null)', shown):
            assert pair in body, f"README shows {pair} for {path}; the API says {body[:500]}"


@pytest.mark.long(36)
def test_the_readme_quick_start_works_as_written(shell: Shell, tmp_path: Path) -> None:
    lines = quick_start()
    make_run = command(lines, r"make run")
    example_post = command(lines, r"python3 -c .*")
    list_outbound = command(lines, r"ls var/outbound/new")
    activate = command(lines, r"\. \.venv/bin/activate")
    status = command(lines, r"listgate status")
    sink_line = command(lines, r"listgate sink --listen 127\.0\.0\.1:1025 .*")
    relay_run = command(lines, r"LISTGATE_OUTBOUND=smtp://127\.0\.0\.1:1025 make run")
    smtp_port = shell.env["LISTGATE_SMTP_LISTEN"].rsplit(":", 1)[1]
    web = "http://" + shell.env["LISTGATE_WEB_LISTEN"]
    var = shell.cwd / "var"

    # 1. make run: one short summary, the demo discussion on the archive.
    run = shell.start(make_run, tmp_path / "run.log")
    startup = wait_for_up(tmp_path / "run.log", run)
    rows = sum(max(1, -(-len(line) // SCREEN_COLUMNS)) for line in startup)
    assert rows <= SCREEN_ROWS, f"{rows} rows:\n" + "\n".join(startup)
    assert not any(
        word in line
        for line in startup
        for word in ("alembic", "celery@", "Running on", "Traceback")
    )
    page = get(f"{web}/lists/demo/")
    assert "Welcome to the demo list" in page and "Which day for the release?" in page
    check_api_examples(web)

    # 2. The printed command (README shows the same one) reaches reader@example.org in var/outbound.
    post = posted_command(startup)
    assert post == example_post.replace("2525", smtp_port), (
        "README's example differs from what make run prints"
    )
    assert shell.run(post).returncode == 0
    assert wait_until(lambda: copies(var / "outbound", "reader@example.org", "Hello"), 60), (
        tmp_path / "run.log"
    ).read_text()[-3000:]
    listed = shell.run(list_outbound)
    assert listed.returncode == 0 and len(listed.stdout.split()) == 1, listed
    assert "Hello, list!" in get(f"{web}/lists/demo/") or "Hello" in get(f"{web}/lists/demo/")
    done = shell.run(f"{activate} && {status}")
    assert (
        done.returncode == 0 and "gateway    ok" in done.stdout and "worker     ok" in done.stdout
    ), done.stdout

    # 3. A child killed outright comes back by itself, and says so.
    state = read_state(state_file(var))
    assert state is not None
    first = state["children"]["gateway"]["pid"]
    os.kill(first, signal.SIGKILL)
    assert wait_until(
        lambda: (
            (read_state(state_file(var)) or {}).get("children", {}).get("gateway", {}).get("state")
            == "ready"
            and (read_state(state_file(var)) or {})["children"]["gateway"]["pid"] != first
        ),
        60,
    )
    assert shell.run(post).returncode == 0
    assert wait_until(lambda: len(copies(var / "outbound", "reader@example.org", "Hello")) == 2, 60)
    done = shell.run(f"{activate} && {status}")
    assert "restarted 1 time, last exited with signal 9 (SIGKILL)" in done.stdout, done.stdout
    # make reports the interrupt; what matters is that everything stopped
    assert shell.ctrl_c(run) != 0 or True
    assert "stopped gateway, archiver, worker, beat, web" in (tmp_path / "run.log").read_text()

    # 4. The development sink as a relay: one line per message.
    sink_port = str(free_port())
    sink = shell.start(
        f"{activate} && {sink_line.replace('1025', sink_port)}", tmp_path / "sink.log"
    )
    assert wait_until(lambda: "listening on" in (tmp_path / "sink.log").read_text(), 30), (
        tmp_path / "sink.log"
    ).read_text()
    relay = shell.start(relay_run.replace("1025", sink_port), tmp_path / "relay.log")
    startup = wait_for_up(tmp_path / "relay.log", relay)
    assert f"relay smtp://127.0.0.1:{sink_port}" in "\n".join(startup)
    assert shell.run(posted_command(startup)).returncode == 0
    assert wait_until(
        lambda: "to reader@example.org: 'Hello'" in (tmp_path / "sink.log").read_text(), 60
    ), ((tmp_path / "sink.log").read_text(), (tmp_path / "relay.log").read_text()[-3000:])
    assert len(list((var / "sink" / "new").glob("*"))) == 1

    # 5. The relay goes away: copies are deferred, the log says why, status says so and exits 1.
    shell.ctrl_c(sink)
    assert shell.run(posted_command(startup)).returncode == 0
    for _ in range(120):  # runs at least once: done is always bound
        done = shell.run(f"{activate} && {status}")
        if "DEFERRING" in done.stdout:
            break
        time.sleep(0.5)
    assert (
        done is not None
        and done.returncode == 1
        and "relay      DEFERRING 1 copy waits for the relay, which said: 0 ConnectionRefusedError"
        in done.stdout
    ), done.stdout if done else ""
    assert re.search(
        r"WARNING worker\.delivery: delivery \d+ deferred, next try in .* the relay smtp://127\.0\.0\.1:"
        + sink_port,
        (tmp_path / "relay.log").read_text(),
    )
    shell.ctrl_c(relay)
