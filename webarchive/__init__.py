"""The web archive: a Flask app built by create_app(settings); nothing is built at import time.

views/         one blueprint per page family, registered below by name
reading/       the queries the pages use (who may read what, threads, listings, search)
rendering/     HTML made in Python: mail bodies, times, charts, the rows of long pages
templating.py  how pages are made (Jinja templates; the rule for fast rows) and what templates call
urls.py        links: every path from its route (url_for, or the same string built fast)
context.py     per-app resources and the request's database session
security.py    sessions and CSRF; errors.py: error pages; ratelimit.py: limits
"""

from __future__ import annotations

from flask import Blueprint, Flask
from flask.json.provider import DefaultJSONProvider

from listgate.config import Settings
from listgate.limits import BODY

# A request may carry the longest text a form takes whatever its characters: a four-byte one is
# sent as twelve (%F0%9F%98%80), plus room for the rest of the form.
MAX_REQUEST_BYTES = BODY.chars * 12 + 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web archive for settings (read from the environment when none is given)."""
    from webarchive import context, errors, ids, security, templating, urls

    settings = settings if settings is not None else Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        SESSION_COOKIE_NAME="listgate_session",
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        # a multipart form's field is held by the request's limit alone (Flask's own 500,000
        # bytes refused 125,000 emoji), so the only 413 is the one its page explains
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
        JSON_SORT_KEYS=False,
    )
    if isinstance(app.json, DefaultJSONProvider):  # always, unless a provider is configured
        app.json.sort_keys = False
    context.init_app(app, settings)
    security.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    ids.init_app(app)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    urls.init_app(app)
    if settings.trusted_proxies:
        _trust_proxies(app, settings.trusted_proxies)
    return app


def _trust_proxies(app: Flask, hops: int) -> None:
    """Take the client address and scheme from the last `hops` proxies' X-Forwarded-* headers."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    # Flask's documented `app.wsgi_app = ProxyFix(app.wsgi_app)`, spelled as what it does (an
    # instance attribute over the method) so that the type checker does not take it for a mistake.
    vars(app)["wsgi_app"] = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def blueprints() -> list[Blueprint]:
    """Every page family, in the order they are registered.

    Imported here: importing webarchive stays cheap.
    """
    from webarchive.views import (
        acting,
        api,
        auth,
        compose,
        editing,
        exports,
        feeds,
        listadmin,
        maps,
        moderation,
        ops,
        pages,
        prefs,
        profile,
        search,
        subscribe,
        takedown,
    )

    return [
        pages.bp,
        api.bp,
        exports.bp,
        feeds.bp,
        search.bp,
        auth.bp,
        acting.bp,
        compose.bp,
        moderation.bp,
        listadmin.bp,
        profile.bp,
        takedown.bp,
        prefs.bp,
        maps.bp,
        editing.bp,
        subscribe.bp,
        ops.bp,
    ]
