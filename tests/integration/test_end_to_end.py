"""One post and one reply travelling the whole way, with real processes and real sockets.

Twice: (1) `listgate up` on the embedded default (SQLite database, SQLAlchemy broker), and
(2) PostgreSQL + Redis with separate gateway, worker, beat and web processes. The lists are
made with the `listgate` command, mail goes in with smtplib, comes out at an aiosmtpd sink,
and the archive is read over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Iterator

import pytest

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from tests.conftest import free_port
from tests.sink import SmtpSink

pytestmark = pytest.mark.integration

DOMAIN = "lists.test"
ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.net"
STARTUP_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 60.0


@dataclass
class Stack:
    """Running listgate processes and how to reach them."""

    env: dict[str, str]
    smtp_port: int
    web_port: int
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Start a process with this stack's environment, logging to logs/NAME.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def listgate(self, *args: str) -> str:
        """Run a `listgate` subcommand to completion; its output."""
        done = subprocess.run([sys.executable, "-m", "listgate.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, f"listgate {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def log_tail(self, lines: int = 40) -> str:
        """The end of every process log, for failure messages."""
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def check_alive(self) -> None:
        """Fail with the logs when a process died."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with status {proc.returncode}\n{self.log_tail()}", pytrace=False)

    def wait_ready(self) -> None:
        """Wait until SMTP answers and /healthz says ok."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            if _smtp_ready(self.smtp_port) and _get(self.web_port, "/healthz", quiet=True)[0] == 200:
                return
            time.sleep(0.2)
        pytest.fail(f"listgate did not come up within {STARTUP_TIMEOUT:.0f}s\n{self.log_tail()}", pytrace=False)

    def stop(self) -> dict[str, int]:
        """SIGTERM every process (group), SIGKILL stragglers; their exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                _killpg(proc, signal.SIGKILL)
                codes[name] = proc.wait()
            _killpg(proc, signal.SIGKILL)
        return codes


def _killpg(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _smtp_ready(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def _get(port: int, path: str, quiet: bool = False) -> tuple[int, str]:
    """GET a path from the web archive: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError:
        if quiet:
            return 0, ""
        raise


def _json(port: int, path: str) -> Any:
    status, body = _get(port, path)
    assert status == 200, f"GET {path}: {status} {body[:300]}"
    return json.loads(body)


def base_env(tmp_path: Path, sink: SmtpSink, **extra: str) -> dict[str, str]:
    """The process environment: everything in tmp_path, on free ports, mail out to the sink."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTGATE_")}
    env.update({
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_DOMAIN": DOMAIN,
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_OUTBOUND": sink.url,
        "LISTGATE_SECRET_KEY": "end-to-end-secret-0123456789",
        "PYTHONUNBUFFERED": "1",
        **extra,
    })
    return env


def make_stack(tmp_path: Path, env: dict[str, str]) -> Stack:
    """A Stack for env (ports read back from it)."""
    port = lambda name: int(env[name].rsplit(":", 1)[1])  # noqa: E731
    return Stack(env=env, smtp_port=port("LISTGATE_SMTP_LISTEN"), web_port=port("LISTGATE_WEB_LISTEN"),
                 logs=tmp_path / "logs")


@pytest.fixture
def embedded(tmp_path: Path, sink: SmtpSink) -> Iterator[Stack]:
    """`listgate up` on the embedded default."""
    stack = make_stack(tmp_path, base_env(tmp_path, sink))
    stack.start("up", [sys.executable, "-m", "listgate.cli", "up"])
    try:
        stack.wait_ready()
        yield stack
    finally:
        codes = stack.stop()
    assert codes["up"] == 0, f"`listgate up` did not stop cleanly\n{stack.log_tail()}"


@pytest.fixture
def production(tmp_path: Path, sink: SmtpSink, postgres_db: str, redis_db_url: str) -> Iterator[Stack]:
    """Separate gateway, worker, beat and web processes on PostgreSQL and Redis."""
    env = base_env(tmp_path, sink, LISTGATE_DATABASE_URL=postgres_db, LISTGATE_BROKER_URL=redis_db_url)
    yield from run_separately(make_stack(tmp_path, env))


def run_separately(stack: Stack) -> Iterator[Stack]:
    """Start gateway, worker, beat and web as separate processes, yield the stack once ready, stop them."""
    for name, args in (("gateway", ["-m", "gateway"]), ("worker", ["-m", "worker", "worker"]),
                       ("beat", ["-m", "worker", "beat"]), ("web", ["-m", "webarchive"])):
        stack.start(name, [sys.executable, *args])
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def mail(sender: str, subject: str, msgid: str, body: str, in_reply_to: str | None = None) -> EmailMessage:
    """A post as a mail client writes it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"dev@{DOMAIN}"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{msgid}>"
    msg["Date"] = "Wed, 25 Nov 2026 10:00:00 +0100"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg.set_content(body)
    return msg


def send(stack: Stack, msg: EmailMessage, sender: str) -> None:
    """Post over SMTP; the gateway must accept it."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        refused = smtp.send_message(msg, from_addr=sender, to_addrs=[f"dev@{DOMAIN}"])
    assert refused == {}


def _shown(port: int, path: str, text: str, timeout: float = 10.0) -> tuple[int, str]:
    """The page once it shows text (the 250 means spooled: the archiver publishes it a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        status, page = _get(port, path)
        if (status == 200 and text in page) or time.monotonic() > deadline:
            return status, page
        time.sleep(0.05)


def wait_for_copies(stack: Stack, sink: SmtpSink, count: int) -> None:
    """Wait until the sink holds count messages; fail with the logs if it never does."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline and len(sink.received) < count:
        stack.check_alive()
        time.sleep(0.1)
    got = [(r.rcpt_tos, r.message["Subject"]) for r in sink.received]
    assert len(got) >= count, f"expected {count} copies at the sink, got {got}\n{stack.log_tail()}"


def copies(sink: SmtpSink, address: str, msgid: str) -> list[Any]:
    """The copies of one post the sink received for one subscriber."""
    return [r.message for r in sink.to(address) if r.message["Message-ID"] == f"<{msgid}>"]


def create_list(stack: Stack, use_cli: bool) -> None:
    """The list dev with three subscribers, made by the `listgate` command or the library."""
    if use_cli:
        assert "created dev@lists.test" in stack.listgate("lists", "create", "dev", "--title", "Developers")
        for address in (ALICE, BOB, CAROL):
            stack.listgate("subscribe", address, "--list", "dev")
        return
    engine = make_engine(Settings.from_env(stack.env))
    try:
        with transaction(session_factory(writer(engine))) as session:
            mlist = lists.create(session, "dev", "Developers")
            mlist.dmarc_mode = "never"  # no DNS lookups of the senders' domains (CI may have no resolver)
            for address in (ALICE, BOB, CAROL):
                lists.subscribe(session, mlist, address)
    finally:
        engine.dispose()


def post_and_reply(stack: Stack, sink: SmtpSink, use_cli: bool) -> None:
    """The scenario of issue 2, asserted the way a user would notice."""
    create_list(stack, use_cli)

    send(stack, mail(f"Alice <{ALICE}>", "Release plan", "e2e-post@example.org", "Shall we ship on Friday?"), ALICE)
    status, page = _shown(stack.web_port, "/lists/dev/", "Release plan")
    assert status == 200 and "Release plan" in page
    threads = _json(stack.web_port, "/api/lists/dev/threads")["threads"]
    assert [t["subject"] for t in threads] == ["Release plan"] and threads[0]["messages"] == 1
    thread_id = threads[0]["id"]

    wait_for_copies(stack, sink, 2)
    for address in (BOB, CAROL):
        got = copies(sink, address, "e2e-post@example.org")
        assert len(got) == 1, f"{address} got {len(got)} copies"
        assert "dev.lists.test" in got[0]["List-Id"]
        assert "Shall we ship on Friday?" in got[0].get_payload(decode=True).decode()
    assert copies(sink, ALICE, "e2e-post@example.org") == [], "the author got her own post"

    reply = mail(f"Bob <{BOB}>", "Re: Release plan", "e2e-reply@example.org", "Friday is fine.", "e2e-post@example.org")
    send(stack, reply, BOB)
    _shown(stack.web_port, f"/api/threads/{thread_id}", "e2e-reply@example.org")
    thread = _json(stack.web_port, f"/api/threads/{thread_id}")
    assert [m["message_id"] for m in thread["messages"]] == ["e2e-post@example.org", "e2e-reply@example.org"]
    assert thread["messages"][1]["parent_message_id"] == "e2e-post@example.org"
    assert _json(stack.web_port, "/api/lists/dev/threads")["threads"][0]["messages"] == 2

    wait_for_copies(stack, sink, 4)
    for address in (ALICE, CAROL):
        got = copies(sink, address, "e2e-reply@example.org")
        assert len(got) == 1 and "dev.lists.test" in got[0]["List-Id"], f"{address} got {len(got)} copies of the reply"
    assert copies(sink, BOB, "e2e-reply@example.org") == []
    time.sleep(1.0)  # let a duplicate, if the worker were to send one, arrive before counting
    assert len(sink.received) == 4, [(r.rcpt_tos, r.message["Subject"]) for r in sink.received]


def test_embedded_default_with_listgate_up(embedded: Stack, sink: SmtpSink) -> None:
    post_and_reply(embedded, sink, use_cli=True)
    demo_command_works_as_pasted(embedded)


def test_production_on_postgres_and_redis_with_separate_processes(production: Stack, sink: SmtpSink) -> None:
    post_and_reply(production, sink, use_cli=False)


def demo_command_works_as_pasted(stack: Stack) -> None:
    """The command `listgate up` printed on its first run posts to the demo list when pasted."""
    log = (stack.logs / "up.log").read_text()
    lines = [line.strip() for line in log.splitlines() if line.strip().startswith("python3 -c")]
    assert len(lines) == 1, log
    done = subprocess.run(["bash", "-c", lines[0]], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    status, page = _shown(stack.web_port, "/lists/demo/", "Hello")
    assert status == 200 and "Hello" in page


