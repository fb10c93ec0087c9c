"""Fixtures for the web archive: an app on the test database and a client."""

from __future__ import annotations

from typing import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from listgate.config import Settings


@pytest.fixture
def app(settings: Settings, engine: Engine) -> Iterator[Flask]:
    """The web archive on the test's migrated database."""
    from webarchive import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["listgate"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client (cookies kept between requests)."""
    return app.test_client()


class FakeSender:
    """Records the task names the app sends instead of talking to a broker."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_task(self, name: str, args=(), **_kw) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(name)


@pytest.fixture
def sender(app: Flask) -> FakeSender:
    """The app's broker client, replaced by a FakeSender."""
    fake = FakeSender()
    app.extensions["listgate"].sender = fake
    return fake
