"""A small HTTP load client: threads with keep-alive connections, latency per request."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

from bench.common import percentile


@dataclass
class HttpResult:
    """Latencies (seconds) of the requests that answered 200, and what else happened."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    body_bytes: int = 0

    @property
    def p50(self) -> float:
        """Median latency."""
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        """99th percentile latency."""
        return percentile(self.latencies, 99)

    def problem(self) -> str:
        """'' when every request answered 200, else a short summary."""
        bad = {s: n for s, n in self.statuses.items() if s != 200}
        parts = [f"HTTP {s} x{n}" for s, n in sorted(bad.items())] + self.errors[:1]
        return ", ".join(parts)


def fetch(
    port: int,
    path: str,
    host: str = "127.0.0.1",
    timeout: float = 120,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """One GET: (status, Location header)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Location", "")
    finally:
        conn.close()


def load(
    port: int,
    path: str,
    concurrency: int,
    requests: int,
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> HttpResult:
    """`requests` GETs of path over `concurrency` keep-alive connections."""
    sent = {"Accept-Encoding": "identity", **(headers or {})}
    result = HttpResult()
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        mine: list[float] = []
        statuses: dict[int, int] = {}
        errors: list[str] = []
        size = 0
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            began = time.perf_counter()
            try:
                conn.request("GET", path, headers=sent)
                resp = conn.getresponse()
                body = resp.read()
                elapsed = time.perf_counter() - began
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    mine.append(elapsed)
                    size = len(body)
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=120)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:160])
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=120)
        conn.close()
        with lock:
            result.latencies.extend(mine)
            result.errors.extend(errors)
            result.body_bytes = max(result.body_bytes, size)
            for s, n in statuses.items():
                result.statuses[s] = result.statuses.get(s, 0) + n

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result
