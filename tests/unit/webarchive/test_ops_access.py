"""Who may read /metrics on the web port (only with LISTGATE_METRICS_TOKEN), and trusted proxies
(ProxyFix).

The loopback listener (LISTGATE_METRICS_LISTEN) is tested on real sockets in
tests/integration/test_metrics_access.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine

from listgate.config import Settings, SettingsError
from tests.support.web import csrf

TOKEN = "metrics-token-0123456789"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


@pytest.fixture
def make_app(settings: Settings, engine: Engine) -> Iterator[Callable[..., Flask]]:
    """create_app on the test database with some settings changed."""
    from webarchive import create_app

    apps: list[Flask] = []

    def build(**changes: object) -> Flask:
        app = create_app(settings.with_(**changes))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["listgate"].engine.dispose()


PROXIED: tuple[dict[str, str], ...] = (
    {},
    {"X-Real-IP": "198.51.100.9"},
    {"X-Forwarded-For": "198.51.100.9"},
    {"Forwarded": "for=198.51.100.9"},
)


@pytest.mark.parametrize(
    "headers", PROXIED, ids=["direct", "x-real-ip", "x-forwarded-for", "forwarded"]
)
@pytest.mark.parametrize("remote", ["127.0.0.1", "::1", "203.0.113.5"])
def test_without_a_token_the_web_port_never_serves_metrics(
    make_app: Callable[..., Flask], headers: dict[str, str], remote: str
) -> None:
    # A reverse proxy on this host that sends only X-Real-IP makes every visitor look local:
    # the web port cannot tell, so without a token it serves /metrics to nobody.
    refused = (
        make_app()
        .test_client()
        .get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": remote})
    )
    assert refused.status_code == 404
    assert "LISTGATE_METRICS_LISTEN" in refused.get_data(as_text=True)
    assert "listgate_" not in refused.get_data(as_text=True)


def test_with_a_token_the_bearer_token_is_required_from_anywhere(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(metrics_token=TOKEN).test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        client.get(
            "/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}
        ).status_code
        == 401
    )
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, environ_base=OUTSIDE)
    assert ok.status_code == 200 and "listgate_received_total" in ok.get_data(as_text=True)


def test_healthz_stays_public(make_app: Callable[..., Flask]) -> None:
    client = make_app(metrics_token=TOKEN).test_client()
    assert client.get("/healthz", environ_base=OUTSIDE).status_code == 200


def _ask_for_signin_links(app: Flask, forwarded_for: str, times: int) -> list[int]:
    """Status codes of `times` sign-in requests arriving
    from a proxy on 10.0.0.2 for forwarded_for.
    """
    client = app.test_client()
    env = {"REMOTE_ADDR": "10.0.0.2"}
    headers = {"X-Forwarded-For": forwarded_for}
    token = csrf(client)
    return [
        client.post(
            "/signin",
            data={"csrf_token": token, "address": f"p{i}@example.org"},
            headers=headers,
            environ_base=env,
        ).status_code
        for i in range(times)
    ]


def test_trusted_proxy_rate_limits_see_the_real_client(make_app: Callable[..., Flask]) -> None:
    app = make_app(trusted_proxies=1)
    app.config["RATE_LIMITS"] = {"signin-ip": (2, 900)}
    assert _ask_for_signin_links(app, "198.51.100.1", 3) == [200, 200, 429]
    # Another visitor behind the same proxy has their own allowance.
    assert _ask_for_signin_links(app, "198.51.100.2", 1) == [200]


def test_without_trusted_proxies_forwarded_headers_are_ignored(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    app.config["RATE_LIMITS"] = {"signin-ip": (2, 900)}
    assert _ask_for_signin_links(app, "198.51.100.1", 2) == [200, 200]
    # A client cannot escape the limit by inventing
    # X-Forwarded-For: all count as the proxy 10.0.0.2.
    assert _ask_for_signin_links(app, "198.51.100.2", 1) == [429]


def test_settings_read_and_check_the_new_variables(tmp_path: Path) -> None:
    base = {"LISTGATE_DATA_DIR": str(tmp_path), "LISTGATE_SECRET_KEY": "x" * 32}
    s = Settings.from_env(
        {**base, "LISTGATE_METRICS_TOKEN": TOKEN, "LISTGATE_TRUSTED_PROXIES": "2"}
    )
    assert (s.metrics_token, s.trusted_proxies) == (TOKEN, 2)
    assert (Settings.from_env(base).metrics_token, Settings.from_env(base).trusted_proxies) == (
        "",
        0,
    )
    with pytest.raises(SettingsError, match="LISTGATE_METRICS_TOKEN"):
        Settings.from_env({**base, "LISTGATE_METRICS_TOKEN": "short"})
    with pytest.raises(SettingsError, match="LISTGATE_TRUSTED_PROXIES"):
        Settings.from_env({**base, "LISTGATE_TRUSTED_PROXIES": "-1"})


def test_the_metrics_listener_must_be_a_loopback_address_of_its_own(tmp_path: Path) -> None:
    base = {
        "LISTGATE_DATA_DIR": str(tmp_path),
        "LISTGATE_SECRET_KEY": "x" * 32,
        "LISTGATE_WEB_LISTEN": "127.0.0.1:8080",
    }
    assert Settings.from_env(base).metrics_listen is None
    assert Settings.from_env(
        {**base, "LISTGATE_METRICS_LISTEN": "127.0.0.1:9108"}
    ).metrics_listen == ("127.0.0.1", 9108)
    assert Settings.from_env({**base, "LISTGATE_METRICS_LISTEN": "[::1]:9108"}).metrics_listen == (
        "::1",
        9108,
    )
    for value in (
        "0.0.0.0:9108",
        "192.0.2.1:9108",
        "example.org:9108",
        "127.0.0.1:8080",
        "9108",
        "127.0.0.1:x",
    ):
        with pytest.raises(SettingsError, match="LISTGATE_METRICS_LISTEN"):
            Settings.from_env({**base, "LISTGATE_METRICS_LISTEN": value})
