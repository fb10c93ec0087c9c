"""`listgate up` killed outright (kill -9) and started again at once, over and over: each new `up`
waits for the killed one's services to go away, then serves a post over SMTP and a page over HTTP.

The real services run (gateway, archiver, worker, beat, web on the embedded SQLite default). Only
the supervisor is killed: its children get SIGTERM from the kernel a moment later and take a few
seconds to stop, the time in which the next `up` starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from functools import partial
from pathlib import Path

import pytest

from listgate import demo
from listgate.supervisor import read_state, state_file
from tests.support.config import DOMAIN, env_for, wait_until
from tests.support.stack import get
from tests.unit.listgate.test_cli import alive

pytestmark = pytest.mark.integration
ROUNDS = 5


class Site:
    """One data dir whose `listgate up` is started, killed and started again."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LISTGATE_")},
            **env_for(tmp_path, PYTHONUNBUFFERED="1"),
        }
        self.smtp_port = int(self.env["LISTGATE_SMTP_LISTEN"].rsplit(":", 1)[1])
        self.web_port = int(self.env["LISTGATE_WEB_LISTEN"].rsplit(":", 1)[1])
        self.ups: list[subprocess.Popen[bytes]] = []
        self.children: dict[
            int, str
        ] = {}  # every service seen (pid: name), to be sure none is left

    def log(self, n: int) -> Path:
        """The output of the n-th `up`."""
        return self.tmp_path / f"up-{n}.log"

    def start(self) -> subprocess.Popen[bytes]:
        """Start the next `listgate up`, its output to its own log."""
        with open(self.log(len(self.ups)), "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "listgate.cli", "up"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.ups.append(proc)
        return proc

    def wait_up(self, proc: subprocess.Popen[bytes]) -> str:
        """Wait until this `up` says it is up (failing with its output if it exits); its output."""
        log = self.log(self.ups.index(proc))

        def up() -> bool:
            assert proc.poll() is None, (
                f"`listgate up` exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
            return "listgate is up" in log.read_text()

        wait_until(up, 120, "`listgate up` to say it is up")
        state = read_state(state_file(Path(self.env["LISTGATE_DATA_DIR"])))
        assert state is not None and state["pid"] == proc.pid, state
        self.children |= {c["pid"]: name for name, c in state["children"].items() if c["pid"]}
        return log.read_text()

    def post(self, subject: str) -> None:
        """Post to the demo list over SMTP: it must be accepted."""
        msg = EmailMessage()
        msg["From"], msg["To"] = demo.POSTER, f"{demo.NAME}@{DOMAIN}"
        msg["Subject"], msg["Message-ID"] = subject, f"<{subject.replace(' ', '.')}@example.org>"
        msg.set_content(f"{subject}: is anybody there?\n")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            assert smtp.send_message(msg) == {}

    def page_shows(self, subject: str) -> bool:
        """Whether the demo list's page on the web lists the subject."""
        status, body = get(self.web_port, f"/lists/{demo.NAME}/", quiet=True)
        return status == 200 and subject in body

    def stop(self) -> None:
        """SIGTERM the `up`s still running, then make sure no service of any of them is left."""
        for proc in self.ups:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        left = {pid: name for pid, name in self.children.items() if alive(pid)}
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each service leads its own process group
        assert not left, f"services left running after every `up` stopped: {left}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A data dir for `listgate up`; every `up` and service stopped afterwards."""
    site = Site(tmp_path)
    try:
        yield site
    finally:
        site.stop()


@pytest.mark.long(59)
def test_up_started_right_after_a_kill_9_waits_for_the_old_services_and_serves(
    site: Site,
) -> None:
    proc = site.start()
    site.wait_up(proc)
    for n in range(ROUNDS):
        subject = f"round {n}"
        site.post(subject)
        wait_until(partial(site.page_shows, subject), 60, f"{subject!r} on the web")
        old = dict(site.children)
        proc.kill()  # SIGKILL: the supervisor gets no chance to stop its services
        proc.wait()
        proc = site.start()  # at once, while the old services are still stopping
        site.wait_up(proc)
        beside = {pid: name for pid, name in old.items() if alive(pid)}
        assert not beside, f"old services still run beside the new ones: {beside}"
    site.post("last round")
    wait_until(lambda: site.page_shows("last round"), 60, "the last post on the web")
    site.stop()
