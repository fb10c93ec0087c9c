"""A real Celery worker subprocess for integration tests, and small helpers to post and wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from celery import Celery
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import IngestResult, ingest
from listgate.mail.parser import parse
from listgate.models import Delivery, Subscription
from listgate.states import SubscriptionState

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`python -m worker worker` in its own process group (so SIGKILL takes its pool children too)."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int = 2) -> None:
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.log = log
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> "WorkerProcess":
        """Start and wait until Celery says it is ready."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "worker", "-c", str(self.concurrency), "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "-P", "prefork"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:]
            if b"worker ready" in text:  # listgate.readiness, once Celery consumes
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{text.decode(errors='replace')[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool: no chance to finish, ack or clean up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Cold shutdown (SIGQUIT: the tests have waited for the work they check), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # the main process only: it stops its pool itself
        try:
            self.proc.wait(2)  # a cold shutdown can idle in broker/pool timeouts: not worth waiting for
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Site:
    """Settings, database and a producer app for one test."""

    settings: Settings
    env: dict[str, str]
    db: sessionmaker[Session]
    app: Celery

    def post(self, raw: bytes, list_name: str = "dev") -> IngestResult:
        """Ingest a post as the gateway would, then enqueue its work after the commit."""
        with transaction(self.db) as session:
            result = ingest(session, parse(raw), lists.require(session, list_name), domain=self.settings.domain)
        dispatch.enqueue(self.app, result.outbox)
        return result

    def subscribe(self, list_name: str, *addresses: str, kind: str = "list", thread_id: int = 0) -> None:
        """Active subscriptions, as an administrator adds them."""
        with transaction(self.db) as session:
            mlist = lists.require(session, list_name)
            if len(addresses) > 50:
                session.execute(insert(Subscription), [
                    {"list_id": mlist.id, "address": a, "kind": kind, "thread_key": thread_id, "status": SubscriptionState.ACTIVE}
                    for a in addresses])
            else:
                for address in addresses:
                    lists.subscribe(session, mlist, address, kind, thread_id)

    def deliveries(self, message_pk: int) -> dict[str, str]:
        """{address: status} of a post's deliveries."""
        with self.db() as session:
            return dict(session.execute(select(Delivery.address, Delivery.status)
                                        .where(Delivery.message_pk == message_pk)).all())

    def count(self, model: type, *where: object) -> int:
        """How many rows of model match."""
        with self.db() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def wait_until(check: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    """Poll check() until it is truthy; AssertionError naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def mail(sender: str, subject: str, msgid: str, body: str = "Hello list.\n", *, to: str = "dev@lists.test",
         cc: str = "", in_reply_to: str = "", extra: str = "") -> bytes:
    """A small post as a mail client would write it (CRLF)."""
    lines = [f"From: {sender.split('@')[0].title()} <{sender}>", f"To: {to}"]
    if cc:
        lines.append(f"Cc: {cc}")
    lines += [f"Subject: {subject}", f"Message-ID: <{msgid}>", "Date: Wed, 25 Nov 2026 10:00:00 +0000"]
    if in_reply_to:
        lines += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
    if extra:
        lines.append(extra)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", *body.splitlines()]
    return ("\r\n".join(lines) + "\r\n").encode()


def worker_site(tmp: Path, outbound: str, **env: str) -> Iterator[Site]:
    """A migrated site sending to `outbound`, with one real worker running while the generator is open."""
    from listgate.db import make_engine, session_factory, writer
    from listgate.schema import upgrade
    from tests.conftest import make_settings
    from worker.celery_app import make_celery

    env = {"LISTGATE_DATA_DIR": str(tmp / "var"), "LISTGATE_DOMAIN": "lists.test",
           "LISTGATE_SECRET_KEY": "test-secret-key-0123456789", "LISTGATE_OUTBOUND": outbound,
           "LISTGATE_BASE_URL": "https://lists.test", **env}
    settings = make_settings(tmp, **env)
    engine = make_engine(settings)
    upgrade(engine)
    proc = WorkerProcess(env, tmp / "worker.log").start()
    try:
        yield Site(settings, env, session_factory(writer(engine)), make_celery(settings))
    finally:
        proc.stop()
        engine.dispose()
