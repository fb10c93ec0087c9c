"""An SMTP load client: N threads posting over real TCP, a new connection per post or one reused."""

from __future__ import annotations

import contextlib
import itertools
import smtplib
import threading
import time
from dataclasses import dataclass, field

BODY_LINE = (
    b"The quick brown fox jumps over the lazy dog while the kernel pages memory in and out.\r\n"
)
_serial = itertools.count(1)


def make_post(to: str, tag: str, size: int = 4096, reply_to: str = "") -> tuple[str, bytes]:
    """A plain post of about size bytes with a unique Message-ID: (message-id, raw)."""
    n = next(_serial)
    msgid = f"{tag}.{n}.{time.monotonic_ns()}@load.bench.test"
    headers = [
        f"From: Load Client {n % 50} <poster{n % 50}@example.org>",
        f"To: {to}",
        f"Subject: {'Re: ' if reply_to else ''}load test post "
        f"{n if not reply_to else reply_to.split('.')[1]}",
        f"Message-ID: <{msgid}>",
        time.strftime("Date: %a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    if reply_to:
        headers += [f"In-Reply-To: <{reply_to}>", f"References: <{reply_to}>"]
    head = ("\r\n".join(headers) + "\r\n\r\n").encode()
    lines = max(1, (size - len(head)) // len(BODY_LINE))
    return msgid, head + BODY_LINE * lines


@dataclass
class LoadResult:
    """What a load run did."""

    sent: int = 0
    accepted: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Accepted posts per second."""
        return self.accepted / self.seconds if self.seconds else 0.0


def run_load(
    port: int,
    to: str,
    clients: int,
    total: int,
    reuse: bool,
    tag: str,
    size: int = 4096,
    host: str = "127.0.0.1",
    duration: float = 0.0,
) -> LoadResult:
    """Post with `clients` concurrent senders: `total` posts, or as many as fit in `duration` s.

    Timed from the first connect to the last 250 (posts in flight at the deadline finish).
    """
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    result = LoadResult()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int, count: int) -> None:
        accepted, sent, errors = 0, 0, []
        conn: smtplib.SMTP | None = None
        start.wait()
        while (sent < count) if not duration else (time.perf_counter() < deadline[0]):
            _msgid, raw = make_post(to, f"{tag}-{index}", size)
            sent += 1
            try:
                if conn is None:
                    conn = smtplib.SMTP(host, port, timeout=60)
                    conn.ehlo("load.bench.test")
                refused = conn.sendmail("poster@example.org", [to], raw)
                if not refused:
                    accepted += 1
                if not reuse:
                    conn.quit()
                    conn = None
            except (smtplib.SMTPException, OSError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if conn is not None:
                    with contextlib.suppress(OSError):
                        conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
        with lock:
            result.sent += sent
            result.accepted += accepted
            result.errors.extend(errors)

    threads = [
        threading.Thread(target=client, args=(i, n), daemon=True) for i, n in enumerate(per_client)
    ]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + duration + 0.01
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - began
    return result


def send_one(port: int, to: str, raw: bytes, host: str = "127.0.0.1") -> str:
    """Send one message; '' on 250, else the error."""
    try:
        with smtplib.SMTP(host, port, timeout=120) as conn:
            conn.sendmail("poster@example.org", [to], raw)
        return ""
    except (smtplib.SMTPException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
