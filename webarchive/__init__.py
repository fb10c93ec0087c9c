"""The web archive: a Flask app built by create_app(settings); nothing is built at import time."""

from __future__ import annotations

import importlib
import logging

from flask import Flask

from listgate.config import Settings

log = logging.getLogger(__name__)

# Blueprints owned by other engineers: registered when their module exists.
OPTIONAL_BLUEPRINTS = ("webarchive.views.subscribe", "webarchive.views.ops")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web archive for settings (read from the environment when none is given)."""
    from webarchive import context, errors, security

    settings = settings if settings is not None else Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        SESSION_COOKIE_NAME="listgate_session",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    context.init_app(app, settings)
    security.init_app(app)
    errors.init_app(app)
    for blueprint in _own_blueprints():
        app.register_blueprint(blueprint)
    for module_name in OPTIONAL_BLUEPRINTS:
        module = _optional_module(module_name)
        if module is not None:
            app.register_blueprint(module.bp)
            # Their forms are reached from mailed links that carry a signed token: no CSRF cookie.
            security.exempt_blueprint(app, module.bp.name)
    if settings.trusted_proxies:
        _trust_proxies(app, settings.trusted_proxies)
    return app


def _trust_proxies(app: Flask, hops: int) -> None:
    """Take the client address and scheme from the last `hops` proxies' X-Forwarded-* headers."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def _own_blueprints() -> list:  # type: ignore[type-arg]
    """This package's blueprints, imported lazily so importing webarchive stays cheap."""
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
        pages,
        prefs,
        profile,
        search,
        takedown,
    )

    return [pages.bp, api.bp, exports.bp, feeds.bp, search.bp, auth.bp, acting.bp, compose.bp, moderation.bp,
            listadmin.bp, profile.bp, takedown.bp, prefs.bp, maps.bp, editing.bp]


def _optional_module(name: str):  # type: ignore[no-untyped-def]
    """The module, or None when it does not exist yet (other import errors propagate)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            log.debug("optional blueprint %s not present", name)
            return None
        raise
