"""/metrics through the real web archive process (werkzeug and gunicorn): the bearer token on the
web port, without a token only on the loopback listener LISTGATE_METRICS_LISTEN."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.config import free_port, prepare, site_env
from tests.support.processes import Service, http_get, webarchive

pytestmark = pytest.mark.integration
TOKEN = "metrics-token-0123456789"


def get(url: str, **headers: str) -> int:
    """The status of a GET with these headers."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    env = site_env(tmp_path, LISTGATE_METRICS_TOKEN=TOKEN)
    prepare(env, "dev")
    web = webarchive(env, tmp_path / "web.log").start()
    try:
        url = f"http://{env['LISTGATE_WEB_LISTEN']}/metrics"
        assert get(url) == 401
        assert get(url, Authorization="Bearer not-the-token-0123456789") == 401
        assert get(url, Authorization=f"Bearer {TOKEN}") == 200
        assert http_get(f"http://{env['LISTGATE_WEB_LISTEN']}/healthz")[0] == 200
    finally:
        web.stop()


@pytest.mark.parametrize("server", ["werkzeug", "gunicorn"])
def test_without_a_token_metrics_are_served_only_on_the_loopback_listener(
    tmp_path: Path, server: str
) -> None:
    metrics_port = free_port()
    env = site_env(tmp_path, LISTGATE_METRICS_LISTEN=f"127.0.0.1:{metrics_port}")
    prepare(env, "dev")
    web = (
        webarchive(env, tmp_path / "web.log")
        if server == "werkzeug"
        else Service(
            "listgate.cli",
            env,
            tmp_path / "web.log",
            int(env["LISTGATE_WEB_LISTEN"].rsplit(":", 1)[1]),
            ["web", "--gunicorn", "--workers", "2"],
        )
    )
    web.start()
    try:
        public = f"http://{env['LISTGATE_WEB_LISTEN']}"
        # A proxy on this host forwards visitors to the web
        # port with only X-Real-IP: they all look local.
        for headers in ({}, {"X-Real-IP": "198.51.100.9"}, {"X-Forwarded-For": "198.51.100.9"}):
            assert get(f"{public}/metrics", **headers) == 404, headers
        assert get(f"{public}/lists/dev/") == 200 and get(f"{public}/healthz") == 200
        wait_for_port(metrics_port)
        status, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and "listgate_received_total" in body
        # The loopback listener serves the operations endpoints and nothing else.
        assert get(f"http://127.0.0.1:{metrics_port}/healthz") == 200
        assert get(f"http://127.0.0.1:{metrics_port}/lists/dev/") == 404
        assert get(f"http://127.0.0.1:{metrics_port}/signin") == 404
    finally:
        web.stop()


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Until 127.0.0.1:port accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
