"""The short and long sizes of the fault, fuzz and
security tests, their figures, and sending MTAs.
"""

from __future__ import annotations

import contextlib
import json
import os
import smtplib
import threading
import time
from dataclasses import dataclass, field


def soak() -> bool:
    """True under `make soak` (SOAK=1): the long versions run."""
    return os.environ.get("SOAK", "").strip().lower() in ("1", "true", "yes")


def size(short: int, long: int) -> int:
    """How many messages/attempts: `short` in `make test`, `long` under `make soak`."""
    return long if soak() else short


def record(
    scenario: str,
    attempts: int,
    lost: int,
    duplicated: int,
    recovery_s: float | None = None,
    note: str = "",
    held: int | None = None,
) -> None:
    """Append one figure for docs/reliability.md (only when LISTGATE_RELIABILITY_OUT names a file).

    `held`: of the attempts (attacks), how many the site withstood (refused, or served within its
    limits).
    """
    out = os.environ.get("LISTGATE_RELIABILITY_OUT", "")
    if not out:
        return
    row = {
        "scenario": scenario,
        "attempts": attempts,
        "lost": lost,
        "duplicated": duplicated,
        "recovery_s": None if recovery_s is None else round(recovery_s, 2),
        "note": note,
        "soak": soak(),
    }
    if held is not None:
        row["held"] = held
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def post(
    msgid: str,
    subject: str = "Hello",
    sender: str = "ann@example.org",
    body: str = "Hello list.\r\n",
    to: str = "dev@lists.test",
) -> bytes:
    """A small well-formed post."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{msgid}>\r\n\r\n{body}"
    ).encode()


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
    """A sending mail server: queues posts, retries
    each later with the same bytes until it gets a 250.
    """

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
                self._reset(conn, exc.smtp_code >= 500)
                conn = None
                if exc.smtp_code >= 500:  # a real MTA bounces it: never retried
                    self.refused.append(f"{msgid}: {exc.smtp_code} {exc.smtp_error!r}")
                    pending.pop(0)
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                code = next(iter(exc.recipients.values()))[0]
                self._failed(msgid, code)
                self._reset(conn, code >= 500)
                conn = None
                if code >= 500:
                    self.refused.append(f"{msgid}: {exc.recipients!r}")
                    pending.pop(0)
                continue
            except (
                OSError,
                smtplib.SMTPException,
            ):  # a dropped connection: retry later, same bytes
                self._failed(msgid, 0)
                self._reset(conn, False)
                conn = None
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
            with contextlib.suppress(Exception):  # the connection is already broken
                conn.close()
        if not permanent:
            time.sleep(self.retry_delay)
        return


def run_mtas(mtas: list[Mta], deadline: float) -> list[threading.Thread]:
    """Start one thread per MTA; returns the threads (join them)."""
    threads = [threading.Thread(target=m.run, args=(deadline,), daemon=True) for m in mtas]
    for t in threads:
        t.start()
    return threads
