"""Real processes for the fault tests: the gateway, the web archive, a sending MTA, sizes, figures."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import Message
from listgate.schema import upgrade
from tests.conftest import free_port
from tests.integration.gateway_helpers import settle
from tests.integration.worker_helpers import ROOT, WorkerProcess
from tests.integration.worker_helpers import wait_until as wait_until  # re-exported for the fault tests


def soak() -> bool:
    """True under `make soak` (SOAK=1): the long versions run."""
    return os.environ.get("SOAK", "").strip().lower() in ("1", "true", "yes")


def size(short: int, long: int) -> int:
    """How many messages/attempts: `short` in `make test`, `long` under `make soak`."""
    return long if soak() else short


def record(scenario: str, attempts: int, lost: int, duplicated: int, recovery_s: float | None = None,
           note: str = "", held: int | None = None) -> None:
    """Append one figure for docs/reliability.md (only when LISTGATE_RELIABILITY_OUT names a file).

    `held`: of the attempts (attacks), how many the site withstood (refused, or served within its limits).
    """
    out = os.environ.get("LISTGATE_RELIABILITY_OUT", "")
    if not out:
        return
    row = {"scenario": scenario, "attempts": attempts, "lost": lost, "duplicated": duplicated,
           "recovery_s": None if recovery_s is None else round(recovery_s, 2), "note": note, "soak": soak()}
    if held is not None:
        row["held"] = held
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def site_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """LISTGATE_* variables for one test's processes, everything under tmp_path, on free ports."""
    data = tmp_path / "var"
    env = {
        "LISTGATE_DATA_DIR": str(data),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_WEB_LISTEN": f"127.0.0.1:{free_port()}",
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
        "LISTGATE_BROKER_URL": f"sqla+sqlite:///{data / 'broker.sqlite3'}",
    }
    env.update(extra)
    return env


def prepare(env: dict[str, str], *list_names: str) -> tuple[Settings, sessionmaker[Session]]:
    """Migrate the database named by env and create the lists; returns settings and a writer factory."""
    settings = Settings.from_env(env)
    engine = make_engine(settings)
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as session:
        for name in list_names:
            if lists.get(session, name) is None:
                lists.create(session, name)
    return settings, db


class Service(WorkerProcess):
    """`python -m <module>` in its own process group, logging to a file, ready once its port listens.

    kill() (SIGKILL to the whole group) is the worker tests' own.
    """

    def __init__(self, module: str, env: dict[str, str], log: Path, port: int, args: Iterable[str] = (),
                 prefix: Iterable[str] = ()) -> None:
        self.module, self.args, self.prefix = module, list(args), list(prefix)
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.log, self.port = log, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> "Service":
        """Start and wait until the port accepts connections."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", self.module, *self.args], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
            if not self.port:  # a process that listens nowhere (the archiver): started is ready
                return self
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.module} did not listen on {self.port} after {timeout}s:\n{self.text()[-3000:]}")

    def text(self) -> str:
        """Everything the process logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


def gateway(env: dict[str, str], log: Path, prefix: Iterable[str] = ()) -> Service:
    """The SMTP gateway process for env (not started); `prefix` wraps the command (e.g. setpriv)."""
    return Service("gateway", env, log, int(env["LISTGATE_SMTP_LISTEN"].rsplit(":", 1)[1]), prefix=prefix)


def archiver(env: dict[str, str], log: Path, batch: int = 50) -> Service:
    """The archiver as its own process (`python -m gateway --archiver-only`), not started."""
    return Service("gateway", env, log, 0, ["--archiver-only", "--batch", str(batch)])


def webarchive(env: dict[str, str], log: Path) -> Service:
    """The web archive process for env (not started)."""
    return Service("webarchive", env, log, int(env["LISTGATE_WEB_LISTEN"].rsplit(":", 1)[1]))


def http_get(url: str, timeout: float = 20.0) -> tuple[int, str]:
    """(status, body text) of a GET; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def post(msgid: str, subject: str = "Hello", sender: str = "ann@example.org", body: str = "Hello list.\r\n",
         to: str = "dev@lists.test") -> bytes:
    """A small well-formed post."""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{msgid}>\r\n\r\n{body}").encode()


def post_code(port: int, msgid: str, timeout: float = 30.0) -> int:
    """The SMTP code one post gets (250, or the 4xx/5xx of the step that refused it)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as c:
            c.sendmail("ann@example.org", ["dev@lists.test"], post(msgid))
        return 250
    except smtplib.SMTPRecipientsRefused as exc:
        return next(iter(exc.recipients.values()))[0]
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code


@dataclass
class Mta:
    """A sending mail server: queues posts, retries each later with the same bytes until it gets a 250."""

    port: int
    queue: list[tuple[str, bytes]]
    rcpt: str = "dev@lists.test"
    accepted: list[str] = field(default_factory=list)
    replies: dict[str, list[int]] = field(default_factory=dict)
    errors: int = 0
    refused: list[str] = field(default_factory=list)  # permanent (5xx) refusals: "msgid: reply"
    retry_delay: float = 0.2

    def run(self, deadline: float) -> None:
        """Deliver every queued post (or stop at deadline); one connection reused while it works."""
        pending = list(self.queue)
        conn: smtplib.SMTP | None = None
        while pending and time.monotonic() < deadline:
            msgid, raw = pending[0]
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
                conn.sendmail("ann@example.org", [self.rcpt], raw)
            except smtplib.SMTPResponseException as exc:
                self._failed(msgid, exc.smtp_code)
                conn = self._reset(conn, exc.smtp_code >= 500)
                if exc.smtp_code >= 500:  # a real MTA bounces it: never retried
                    self.refused.append(f"{msgid}: {exc.smtp_code} {exc.smtp_error!r}")
                    pending.pop(0)
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                code = next(iter(exc.recipients.values()))[0]
                self._failed(msgid, code)
                conn = self._reset(conn, code >= 500)
                if code >= 500:
                    self.refused.append(f"{msgid}: {exc.recipients!r}")
                    pending.pop(0)
                continue
            except (OSError, smtplib.SMTPException):  # a dropped connection: retry later, same bytes
                self._failed(msgid, 0)
                conn = self._reset(conn, False)
                continue
            self.replies.setdefault(msgid, []).append(250)
            self.accepted.append(msgid)
            pending.pop(0)
        self._reset(conn, False)

    def _failed(self, msgid: str, code: int) -> None:
        self.errors += 1
        self.replies.setdefault(msgid, []).append(code)

    def _reset(self, conn: smtplib.SMTP | None, permanent: bool) -> None:
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
        if not permanent:
            time.sleep(self.retry_delay)
        return None


def run_mtas(mtas: list[Mta], deadline: float) -> list[threading.Thread]:
    """Start one thread per MTA; returns the threads (join them)."""
    threads = [threading.Thread(target=m.run, args=(deadline,), daemon=True) for m in mtas]
    for t in threads:
        t.start()
    return threads


def archived_ids(db: sessionmaker[Session], list_name: str = "dev") -> list[str]:
    """Message-IDs archived on a list, one entry per stored row (once the spool is archived)."""
    settle(db)
    with db() as session:
        mlist = lists.require(session, list_name)
        return list(session.scalars(select(Message.message_id).where(Message.list_id == mlist.id)))


def message_count(db: sessionmaker[Session]) -> int:
    """Rows in the messages table, read without the write lock (a writer factory's BEGIN IMMEDIATE would
    wait for a busy archiver's batches, and see many at once)."""
    with db.kw["bind"].connect() as conn:
        return conn.execution_options(sqlite_begin="").scalar(select(func.count()).select_from(Message)) or 0
