"""gunicorn entry point: `gunicorn webarchive.wsgi:app`. The app is built on first use."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask


@functools.cache
def _get() -> Flask:
    from webarchive import create_app

    return create_app()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI callable; builds the Flask app from the environment on the first request."""
    return _get()(environ, start_response)
