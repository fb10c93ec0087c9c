"""Who may read /metrics (LISTGATE_METRICS_TOKEN, else loopback only), and trusted proxies (ProxyFix)."""

from __future__ import annotations

from typing import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine

from listgate.config import Settings, SettingsError
from tests.unit.webarchive.helpers import csrf

TOKEN = "metrics-token-0123456789"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


@pytest.fixture
def make_app(settings: Settings, engine: Engine) -> Iterator:  # type: ignore[type-arg]
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


def test_without_a_token_only_loopback_clients_read_metrics(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app().test_client()
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    refused = client.get("/metrics", environ_base=OUTSIDE)
    assert refused.status_code == 403 and "LISTGATE_METRICS_TOKEN" in refused.get_data(as_text=True)
    assert "listgate_" not in refused.get_data(as_text=True)


def test_without_a_token_a_request_through_an_undeclared_proxy_is_refused(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app().test_client()
    # A reverse proxy on the same host: the request comes from 127.0.0.1 but for someone else.
    assert client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.9"}).status_code == 403
    assert client.get("/metrics", headers={"Forwarded": "for=198.51.100.9"}).status_code == 403


def test_with_a_token_the_bearer_token_is_required_from_anywhere(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(metrics_token=TOKEN).test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, environ_base=OUTSIDE)
    assert ok.status_code == 200 and "listgate_received_total" in ok.get_data(as_text=True)


def test_healthz_stays_public(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(metrics_token=TOKEN).test_client()
    assert client.get("/healthz", environ_base=OUTSIDE).status_code == 200


def _ask_for_signin_links(app: Flask, forwarded_for: str, times: int) -> list[int]:
    """Status codes of `times` sign-in requests arriving from a proxy on 10.0.0.2 for forwarded_for."""
    client = app.test_client()
    env = {"REMOTE_ADDR": "10.0.0.2"}
    headers = {"X-Forwarded-For": forwarded_for}
    token = csrf(client)
    return [client.post("/signin", data={"csrf_token": token, "address": f"p{i}@example.org"},
                        headers=headers, environ_base=env).status_code for i in range(times)]


def test_trusted_proxy_rate_limits_see_the_real_client(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(trusted_proxies=1)
    app.config["RATE_LIMITS"] = {"signin-ip": (2, 900)}
    assert _ask_for_signin_links(app, "198.51.100.1", 3) == [200, 200, 429]
    # Another visitor behind the same proxy has their own allowance.
    assert _ask_for_signin_links(app, "198.51.100.2", 1) == [200]
    # And /metrics sees the real (outside) client, not the proxy.
    assert app.test_client().get("/metrics", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 403


def test_without_trusted_proxies_forwarded_headers_are_ignored(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    app.config["RATE_LIMITS"] = {"signin-ip": (2, 900)}
    assert _ask_for_signin_links(app, "198.51.100.1", 2) == [200, 200]
    # A client cannot escape the limit by inventing X-Forwarded-For: all count as the proxy 10.0.0.2.
    assert _ask_for_signin_links(app, "198.51.100.2", 1) == [429]


def test_settings_read_and_check_the_new_variables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = {"LISTGATE_DATA_DIR": str(tmp_path), "LISTGATE_SECRET_KEY": "x" * 32}
    s = Settings.from_env({**base, "LISTGATE_METRICS_TOKEN": TOKEN, "LISTGATE_TRUSTED_PROXIES": "2"})
    assert (s.metrics_token, s.trusted_proxies) == (TOKEN, 2)
    assert (Settings.from_env(base).metrics_token, Settings.from_env(base).trusted_proxies) == ("", 0)
    with pytest.raises(SettingsError, match="LISTGATE_METRICS_TOKEN"):
        Settings.from_env({**base, "LISTGATE_METRICS_TOKEN": "short"})
    with pytest.raises(SettingsError, match="LISTGATE_TRUSTED_PROXIES"):
        Settings.from_env({**base, "LISTGATE_TRUSTED_PROXIES": "-1"})
