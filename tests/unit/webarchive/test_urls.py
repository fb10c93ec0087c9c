"""The fast links (webarchive.urls) are the routes' own paths: equal to url_for for every route."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import IntegerConverter, Rule

from tests.support.config import search
from tests.support.factories import MakeList, make_mail, post
from webarchive import urls

AWKWARD = "dev list+é & 'x' (1)/50%{y}.txt"  # spaces, non-ASCII, quotes, a slash, a percent, braces


def _values(rule: Rule) -> dict[str, Any]:  # url_for's **values: Any
    return {
        name: 4021 if isinstance(rule._converters[name], IntegerConverter) else AWKWARD
        for name in rule.arguments
    }


def test_path_and_pattern_equal_url_for_for_every_route_under_a_script_root(app: Flask) -> None:
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 50
    with app.test_request_context("/", environ_overrides={"SCRIPT_NAME": "/arch{ive}"}):
        for rule in rules:
            values = _values(rule)
            assert urls.path(rule.endpoint, **values) == url_for(rule.endpoint, **values), rule.rule
            if all(isinstance(rule._converters[n], IntegerConverter) for n in rule.arguments):
                assert urls.pattern(rule.endpoint).format(**values) == url_for(
                    rule.endpoint, **values
                ), rule.rule
            else:
                with pytest.raises(ValueError, match=r"pattern\(\) is for routes whose parts"):
                    urls.pattern(rule.endpoint)


def test_a_threads_links_are_the_routes_paths(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    """The links a thread page builds fast lead where url_for would: each one answers."""
    make_list("dev")
    res = post(
        db,
        make_mail(
            "Links", msgid="links@x", attachments=[("notes (1).txt", "text/plain", b"hello")]
        ),
    )
    page = client.get(f"/threads/{res.thread_id}").get_data(as_text=True)
    for name in ("Permalink", "Raw"):
        href = search(rf'<a href="([^"]+)"[^>]*>{name}</a>', page)
        assert client.get(href).status_code == 200, href
    download = search(r'<a href="([^"]+)" download>notes \(1\)\.txt</a>', page)
    assert client.get(download.replace("&amp;", "&")).data == b"hello"
    month = client.get("/lists/dev/2026/3").get_data(as_text=True)
    assert f'href="/threads/{res.thread_id}#m' in month
