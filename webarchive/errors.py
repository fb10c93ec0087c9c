"""Error pages: JSON under /api/, HTML elsewhere; 503 when the database is unreachable."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Register handlers so a visitor never sees a traceback."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _db_down)
    app.register_error_handler(DBAPIError, _db_down)
    app.register_error_handler(Exception, _unexpected)


def wants_json() -> bool:
    """API requests get JSON errors."""
    return request.path.startswith("/api/") or request.path.endswith(".json")


def error_response(code: int, title: str, message: str):  # type: ignore[no-untyped-def]
    """A JSON or HTML error response."""
    if wants_json():
        response = jsonify({"error": message or title, "status": code})
        response.status_code = code
        return response
    return render_template("error.html", code=code, title=title, message=message), code


def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
    code = exc.code or 500
    custom = exc.description != type(exc).description
    message = exc.description if custom or code in (400, 405, 413, 429) else ""
    body, status = _as_pair(error_response(code, exc.name, message or _default_message(code)))
    headers = {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else {}
    return body, status, headers


def _as_pair(response):  # type: ignore[no-untyped-def]
    return response if isinstance(response, tuple) else (response, response.status_code)


def _default_message(code: int) -> str:
    return {
        404: "There is nothing here. The address may be mistyped, or the page was removed.",
        403: "You are not allowed to do that.",
        405: "That action is not available here.",
        500: "Something went wrong on our side. It has been logged.",
    }.get(code, "")


def _db_down(exc: Exception):  # type: ignore[no-untyped-def]
    log.error("database unavailable: %s", exc)
    return error_response(503, "Service Unavailable", "The archive's database is unavailable right now. Please try again in a minute.")


def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _http_error(InternalServerError())
