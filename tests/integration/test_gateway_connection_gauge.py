"""The connections each gateway has open, and its limits, in `listgate status` and /metrics.

Only refusals were counted: an operator could not see how close to its limit a gateway was, nor
which of several gateways (on PostgreSQL) held the connections. Here, over real SMTP on loopback,
N connections opened show as N for that gateway within seconds, fall as they close, and a gateway
that stops is no longer shown.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from listgate.config import Settings
from listgate.status import Status, gather_metrics, render
from tests.support.gateway import Env, RawClient

pytestmark = pytest.mark.integration
TOKEN = "metrics-token-0123456789"
LINE = re.compile(r"^gateway +ok +(\S+): (\d+) of (\d+) connections open")


def _status(env: Env) -> list[str]:
    """The gateway lines of `listgate status` (as its render() writes them)."""
    with env.db.factory() as s:
        metrics = gather_metrics(s)
    lines = render(Status(database="db", database_ok=True, metrics=metrics))
    return [line for line in lines if line.startswith("gateway ")]


def _open_counts(env: Env) -> dict[str, tuple[int, int]]:
    """gateway name -> (open, limit), read from the status lines."""
    found = {}
    for line in _status(env):
        m = LINE.match(line)
        if m:
            found[m[1]] = (int(m[2]), int(m[3]))
    return found


def _metrics(app: Flask) -> dict[str, dict[str, float]]:
    """listgate_gateway_* samples from /metrics: metric -> gateway label -> value."""
    body = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert body.status_code == 200
    samples: dict[str, dict[str, float]] = {}
    for line in body.get_data(as_text=True).splitlines():
        m = re.match(r'^(listgate_gateway_\w+)\{gateway="([^"]+)"\} (\S+)$', line)
        if m:
            samples.setdefault(m[1], {})[m[2]] = float(m[3])
    return samples


def _soon(read: Callable[[], object], expected: object, within: float = 15.0) -> object:
    """What read() returns once it equals expected (or the last reading after `within` s)."""
    deadline = time.monotonic() + within
    while True:
        got = read()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def _name(port: int) -> str:
    """How a gateway in this process listening on port is named: host/pid/address."""
    return f"{socket.gethostname()}/{os.getpid()}/127.0.0.1:{port}"


def _app(settings: Settings) -> Flask:
    from webarchive import create_app

    return create_app(settings.with_(metrics_token=TOKEN))


def test_open_connections_rise_and_fall_in_status_and_metrics(make_env: Callable[..., Env]) -> None:
    env = make_env(LISTGATE_MAX_CONNECTIONS="50", LISTGATE_MAX_CONNECTIONS_PER_CLIENT="8")
    env.make_list("dev")
    env.start()
    gateway = _name(env.settings.smtp_port)
    app = _app(env.settings)
    opened = [RawClient(env.settings.smtp_port) for _ in range(5)]
    try:
        assert [c.greeting[:3] for c in opened] == ["220"] * 5
        assert _soon(lambda: _open_counts(env), {gateway: (5, 50)}) == {gateway: (5, 50)}
        scraped = _metrics(app)
        seen = scraped.pop("listgate_gateway_seen_timestamp_seconds")
        unheard = scraped.pop("listgate_gateway_unheard_seconds")
        assert list(unheard) == [gateway] and 0 <= unheard[gateway] < 60
        assert scraped == {
            "listgate_gateway_up": {gateway: 1.0},
            "listgate_gateway_connections": {gateway: 5.0},
            "listgate_gateway_connection_limit": {gateway: 50.0},
            "listgate_gateway_network_share": {gateway: 12.0},  # a quarter of 50
        }
        assert list(seen) == [gateway] and abs(seen[gateway] - time.time()) < 60
        assert "a network's share 12" in _status(env)[0]
        for c in opened[:3]:
            assert c.cmd("QUIT").startswith("221")
            c.close()
        assert _soon(lambda: _open_counts(env), {gateway: (2, 50)}) == {gateway: (2, 50)}
        assert _metrics(app)["listgate_gateway_connections"] == {gateway: 2.0}
    finally:
        for c in opened:
            c.close()
    assert _soon(lambda: _open_counts(env), {gateway: (0, 50)}) == {gateway: (0, 50)}
    env.close()  # a gateway stopped is not shown: its report goes with it
    assert _status(env) == [] and "listgate_gateway_connections" not in _metrics(app)


def test_two_gateways_on_postgresql_each_show_their_own(tmp_path: Path, postgres_db: str) -> None:
    gateways = [Env(tmp_path / name, LISTGATE_DATABASE_URL=postgres_db) for name in ("a", "b")]
    opened: list[RawClient] = []
    try:
        gateways[0].make_list("dev")
        for env in gateways:
            env.start()
        first, second = (env.settings.smtp_port for env in gateways)
        opened = [RawClient(first) for _ in range(2)] + [RawClient(second) for _ in range(3)]
        assert [c.greeting[:3] for c in opened] == ["220"] * 5

        def by_port() -> dict[int, int]:
            named = {_name(port): port for port in (first, second)}
            return {named.get(k, 0): n for k, (n, _) in _open_counts(gateways[0]).items()}

        assert _soon(by_port, {first: 2, second: 3}) == {first: 2, second: 3}
        for c in opened[2:4]:  # two of the second gateway's close
            c.close()
        assert _soon(by_port, {first: 2, second: 1}) == {first: 2, second: 1}
        gateways.pop().close()  # the second stops: only the first is shown
        assert _soon(by_port, {first: 2}) == {first: 2}
    finally:
        for c in opened:
            c.close()
        for env in gateways:
            env.close()
