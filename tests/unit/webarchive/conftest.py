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
