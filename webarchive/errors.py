"""Error pages: JSON under /api/, HTML elsewhere.

Only an error a retry may get past (a lost database connection, a lock timeout: see
listgate.db.is_transient) is a 503 with Retry-After. Anything else is a 500 whose log line
carries the stack trace and a short reference that the page shows too, so a report can be
matched to its log line.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from listgate.db import is_transient
from listgate.limits import BODY

log = logging.getLogger(__name__)
RETRY_AFTER = 30  # seconds
Answer = tuple[str | Response, int]  # a page or a JSON response, and the status
Headed = tuple[str | Response, int, dict[str, str]]  # the same with headers


def init_app(app: Flask) -> None:
    """Register handlers so a visitor never sees a traceback."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _unexpected)
    app.register_error_handler(Exception, _unexpected)


def wants_json() -> bool:
    """API requests get JSON errors."""
    return request.path.startswith("/api/") or request.path.endswith(".json")


def error_response(code: int, title: str, message: str, **extra: str) -> Response | tuple[str, int]:
    """A JSON or HTML error response."""
    if wants_json():
        response = jsonify({"error": message or title, "status": code, **extra})
        response.status_code = code
        return response
    return render_template("error.html", code=code, title=title, message=message, **extra), code


def _http_error(exc: HTTPException) -> Headed:
    if isinstance(exc, RequestEntityTooLarge):
        return (*_as_pair(_too_large()), {})
    code = exc.code or 500
    custom = exc.description != type(exc).description
    message = exc.description if custom or code in (400, 405, 413, 429) else ""
    body, status = _as_pair(error_response(code, exc.name, message or _default_message(code)))
    retry_after = getattr(exc, "retry_after", None)  # only some HTTP errors have one
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return body, status, headers


def _too_large() -> Response | tuple[str, int]:
    """A request over MAX_CONTENT_LENGTH: the limit, and what to do (it was not read: not kept)."""
    limit = request.max_content_length or 0
    sent = f" {_megabytes(request.content_length)}" if request.content_length else " more"
    return error_response(
        413,
        "Too much at once",
        f"This form sent{sent}; the archive reads at most {_megabytes(limit)} ({limit:,} bytes) "
        f"in one request, which any form here fits: a post's text may have up to "
        f"{BODY.chars:,} characters of any kind. The request was not read, so nothing was "
        "stored and what you wrote cannot be shown here again: go back in your browser (the "
        "form may still hold it), copy your text somewhere safe, and shorten it or split it "
        "into several posts.",
        limit=str(limit),
    )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _as_pair(response: Response | tuple[str, int]) -> Answer:
    return response if isinstance(response, tuple) else (response, response.status_code)


def _default_message(code: int) -> str:
    return {
        404: "There is nothing here. The address may be mistyped, or the page was removed.",
        403: "You are not allowed to do that.",
        405: "That action is not available here.",
        500: "Something went wrong on our side. It has been logged.",
    }.get(code, "")


def _unexpected(exc: Exception) -> Answer | Headed:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if is_transient(exc):
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.path,
            str(exc).splitlines()[0][:300],
        )
        body, status = _as_pair(
            error_response(
                503,
                "Service Unavailable",
                "The archive's database is unavailable right now. Please try again in a minute.",
            )
        )
        return body, status, {"Retry-After": str(RETRY_AFTER)}
    reference = secrets.token_hex(4)
    log.error(
        "unhandled error on %s %s [reference %s]",
        request.method,
        request.path,
        reference,
        exc_info=exc,
    )
    return _as_pair(
        error_response(
            500,
            "Internal Server Error",
            "Something went wrong on our side. It has been logged; "
            f"if you tell the administrators, give them the reference {reference}.",
            reference=reference,
        )
    )
