"""/metrics through the real web archive process: bearer token when set, loopback otherwise."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.faults.helpers import http_get, prepare, site_env, webarchive

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


def test_without_a_token_local_scrapes_work_and_proxied_ones_do_not(tmp_path: Path) -> None:
    env = site_env(tmp_path)
    prepare(env, "dev")
    web = webarchive(env, tmp_path / "web.log").start()
    try:
        url = f"http://{env['LISTGATE_WEB_LISTEN']}/metrics"
        status, body = http_get(url)
        assert status == 200 and "listgate_received_total" in body
        assert get(url, **{"X-Forwarded-For": "203.0.113.7"}) == 403
    finally:
        web.stop()
