"""One post and one reply travelling the whole way, with real processes and real sockets.

Twice: (1) `listgate up` on the embedded default (SQLite database, SQLAlchemy broker), and
(2) PostgreSQL + Redis with separate gateway, worker, beat and web processes. The lists are
made with the `listgate` command, mail goes in with smtplib, comes out at an aiosmtpd sink,
and the archive is read over HTTP.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.states import DmarcMode
from tests.support.config import DOMAIN
from tests.support.sink import SmtpSink, payload
from tests.support.stack import Stack, base_env, get, get_json, make_stack, run_separately

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.net"
DELIVERY_TIMEOUT = 60.0


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
def production(
    tmp_path: Path, sink: SmtpSink, postgres_db: str, redis_db_url: str
) -> Iterator[Stack]:
    """Separate gateway, worker, beat and web processes on PostgreSQL and Redis."""
    env = base_env(
        tmp_path, sink, LISTGATE_DATABASE_URL=postgres_db, LISTGATE_BROKER_URL=redis_db_url
    )
    yield from run_separately(make_stack(tmp_path, env))


def mail(
    sender: str, subject: str, msgid: str, body: str, in_reply_to: str | None = None
) -> EmailMessage:
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
    """The page once it shows text (the 250 means
    spooled: the archiver publishes it a moment later).
    """
    deadline = time.monotonic() + timeout
    while True:
        status, page = get(port, path)
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
        assert "created dev@lists.test" in stack.listgate(
            "lists", "create", "dev", "--title", "Developers"
        )
        for address in (ALICE, BOB, CAROL):
            stack.listgate("subscribe", address, "--list", "dev")
        return
    engine = make_engine(Settings.from_env(stack.env))
    try:
        with transaction(session_factory(writer(engine))) as session:
            mlist = lists.create(session, "dev", "Developers")
            mlist.dmarc_mode = (
                DmarcMode.NEVER  # no DNS lookups of the senders' domains (CI may have no resolver)
            )
            for address in (ALICE, BOB, CAROL):
                lists.subscribe(session, mlist, address)
    finally:
        engine.dispose()


def post_and_reply(stack: Stack, sink: SmtpSink, use_cli: bool) -> None:
    """The scenario of issue 2, asserted the way a user would notice."""
    create_list(stack, use_cli)

    send(
        stack,
        mail(
            f"Alice <{ALICE}>", "Release plan", "e2e-post@example.org", "Shall we ship on Friday?"
        ),
        ALICE,
    )
    status, page = _shown(stack.web_port, "/lists/dev/", "Release plan")
    assert status == 200 and "Release plan" in page
    threads = get_json(stack.web_port, "/api/lists/dev/threads")["threads"]
    assert [t["subject"] for t in threads] == ["Release plan"] and threads[0]["messages"] == 1
    thread_id = threads[0]["id"]

    wait_for_copies(stack, sink, 2)
    for address in (BOB, CAROL):
        got = copies(sink, address, "e2e-post@example.org")
        assert len(got) == 1, f"{address} got {len(got)} copies"
        assert "dev.lists.test" in got[0]["List-Id"]
        assert "Shall we ship on Friday?" in payload(got[0]).decode()
    assert copies(sink, ALICE, "e2e-post@example.org") == [], "the author got her own post"

    reply = mail(
        f"Bob <{BOB}>",
        "Re: Release plan",
        "e2e-reply@example.org",
        "Friday is fine.",
        "e2e-post@example.org",
    )
    send(stack, reply, BOB)
    _shown(stack.web_port, f"/api/threads/{thread_id}", "e2e-reply@example.org")
    thread = get_json(stack.web_port, f"/api/threads/{thread_id}")
    assert [m["message_id"] for m in thread["messages"]] == [
        "e2e-post@example.org",
        "e2e-reply@example.org",
    ]
    assert thread["messages"][1]["parent_message_id"] == "e2e-post@example.org"
    assert get_json(stack.web_port, "/api/lists/dev/threads")["threads"][0]["messages"] == 2

    wait_for_copies(stack, sink, 4)
    for address in (ALICE, CAROL):
        got = copies(sink, address, "e2e-reply@example.org")
        assert len(got) == 1 and "dev.lists.test" in got[0]["List-Id"], (
            f"{address} got {len(got)} copies of the reply"
        )
    assert copies(sink, BOB, "e2e-reply@example.org") == []
    time.sleep(1.0)  # let a duplicate, if the worker were to send one, arrive before counting
    assert len(sink.received) == 4, [(r.rcpt_tos, r.message["Subject"]) for r in sink.received]


@pytest.mark.long(33)
def test_embedded_default_with_listgate_up(embedded: Stack, sink: SmtpSink) -> None:
    post_and_reply(embedded, sink, use_cli=True)
    demo_command_works_as_pasted(embedded)


def test_production_on_postgres_and_redis_with_separate_processes(
    production: Stack, sink: SmtpSink
) -> None:
    post_and_reply(production, sink, use_cli=False)


def demo_command_works_as_pasted(stack: Stack) -> None:
    """The command `listgate up` printed on its first run posts to the demo list when pasted."""
    log = (stack.logs / "up.log").read_text()
    lines = [line.strip() for line in log.splitlines() if line.strip().startswith("python3 -c")]
    assert len(lines) == 1, log
    done = subprocess.run(
        ["bash", "-c", lines[0]], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    status, page = _shown(stack.web_port, "/lists/demo/", "Hello")
    assert status == 200 and "Hello" in page
