"""gunicorn entry point: `gunicorn webarchive.wsgi:app`. The app is built on first use."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

_app: Flask | None = None


def _get() -> Flask:
    global _app
    if _app is None:
        from webarchive import create_app

        _app = create_app()
    return _app


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI callable; builds the Flask app from the environment on the first request."""
    return _get()(environ, start_response)
