"""Links on this archive: the route declared on a view is the one owner of its path.

Templates link with url_for. Where a page repeats a link hundreds of times (a post's links in a
long thread, a row of a month), url_for's map lookup per link shows in the page's time, so
path() builds the same string from the route's own pattern and converters, read from the
app's url_map once; pattern() gives a route whose parts are all numbers as a str.format
string, for a row renderer's loop. A test holds both equal to url_for for every route. No
path is spelled out by hand anywhere else. safe_next() is the one check of a path to go
back to that a visitor gave; carried_args() the one way a visitor's query string reaches
url_for.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, current_app, request, url_for
from werkzeug.routing import IntegerConverter, Rule

_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
# RFC 3986 pchar and "/", with "%" kept: what is already encoded stays as it is
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class _Route:
    """One route's pattern: literal text and named parts with the converter that writes each."""

    def __init__(self, rule: Rule) -> None:
        pieces = _ARGUMENT.split(rule.rule)  # literal, name, literal, name, ..., literal
        self.literals, self.names = pieces[0::2], pieces[1::2]
        self.converters = [rule._converters[name] for name in self.names]
        numeric = all(
            isinstance(c, IntegerConverter) and not c.fixed_digits for c in self.converters
        )
        self.template = self._format_string() if numeric else None

    def build(self, values: dict[str, Any]) -> str:
        """The path with values written as url_for writes them."""
        out = [self.literals[0]]
        for name, converter, literal in zip(
            self.names, self.converters, self.literals[1:], strict=True
        ):
            out += [converter.to_url(values[name]), literal]
        return "".join(out)

    def _format_string(self) -> str:
        """The path as a str.format string ({name} for each part)."""
        braced = [x.replace("{", "{{").replace("}", "}}") for x in self.literals]
        return braced[0] + "".join(
            f"{{{name}}}{literal}" for name, literal in zip(self.names, braced[1:], strict=True)
        )


def init_app(app: Flask) -> None:
    """Read the routes once the blueprints are registered."""
    routes: dict[str, _Route] = {}
    for rule in app.url_map.iter_rules():
        routes.setdefault(rule.endpoint, _Route(rule))  # an endpoint's first route builds it
    app.extensions["listgate_routes"] = routes


def path(endpoint: str, **values: Any) -> str:
    """The path url_for(endpoint, **values) gives (no query string, no anchor), without the map."""
    return request.script_root + current_app.extensions["listgate_routes"][endpoint].build(values)


def pattern(endpoint: str) -> str:
    """The route's path (after the script root) as a str.format string: '/threads/{thread_id}'."""
    template = current_app.extensions["listgate_routes"][endpoint].template
    if template is None:
        raise ValueError(
            f"pattern() is for routes whose parts are all numbers; use path() for {endpoint}"
        )
    return request.script_root.replace("{", "{{").replace("}", "}}") + template


def safe_next(target: str | None) -> str:
    """A path on this site to go back to after signing in, that no browser reads as another site.

    urlsplit drops tabs and newlines and leading controls as browsers do; what is left is
    percent-encoded down to printable ASCII without backslashes, so the browser's own
    normalisation has nothing left to remove, and it must then be a path ("/x", never "//x").
    """
    home = url_for("pages.home")
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc:
        return home
    local = quote(parts.path, safe=_PATH_SAFE)
    if not local.startswith("/") or local.startswith("//"):
        return home
    return local + (f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else "")


def carried_args(*taken: str) -> dict[str, Any]:  # str values: Any is what **url_for takes
    """The request's query arguments (the first value of each) for url_for to carry on.

    Left out: the names in taken (the route's parts, what the caller sets itself) and every
    name url_for reads as an option (_external, _scheme, _anchor, _method), so a query string
    adds query arguments to the link and never changes where it goes.
    """
    return {
        key: value
        for key, value in request.args.items()
        if key not in taken and not key.startswith("_")
    }
