"""Every POST the archive answers is CSRF-protected,
or declared exempt next to its view with a reason.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter, Rule

from tests.support.web import session_for
from webarchive.security import csrf_exemptions

REFUSED = "did not come from this site"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# The only views whose POST needs no CSRF token: the signed token in their URL is the credential.
DECLARED = {"subscribe.confirm", "subscribe.unsubscribe"}


def _unsafe_rules(app: Flask) -> list[tuple[Rule, str]]:
    """(rule, method) for every route that changes something, with the method it answers."""
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(UNSAFE & (rule.methods or set()))
    ]


def _path(rule: Rule) -> str:
    """A path the rule matches, with a number or a word for each of its parts."""
    values = {
        name: 1 if isinstance(rule._converters[name], IntegerConverter) else "x"
        for name in rule.arguments
    }
    built = rule.build(values)
    assert built is not None, rule.rule
    return built[1]


def _forged(app: Flask, path: str, method: str, token: str | None) -> str:
    """What a signed-in victim's browser gets for a
    POST a forger made (token: what the form carried).
    """
    client = app.test_client()
    session_for(client, "victim@example.org", csrf_value="the-real-token")
    data = {} if token is None else {"csrf_token": token}
    return client.open(path, method=method, data=data).get_data(as_text=True)


def test_every_post_endpoint_refuses_a_forged_post_unless_declared_exempt(app: Flask) -> None:
    rules = _unsafe_rules(app)
    assert len(rules) > 20  # the url_map was read, not an empty app
    exempt = csrf_exemptions(app)
    assert set(exempt) == DECLARED, "a new CSRF exemption must be declared here with its reason"
    assert all(len(reason) > 20 for reason in exempt.values())
    for rule, method in rules:
        path = _path(rule)
        if rule.endpoint in exempt:
            assert REFUSED not in _forged(app, path, method, None), path
            continue
        assert REFUSED in _forged(app, path, method, None), (
            f"{method} {path} ({rule.endpoint}) took a POST without a token"
        )
        assert REFUSED in _forged(app, path, method, "forged"), (
            f"{method} {path} took a wrong token"
        )
        assert REFUSED not in _forged(app, path, method, "the-real-token"), (
            f"{method} {path} refused the right token"
        )


def test_operations_endpoints_answer_no_post(app: Flask, client: FlaskClient) -> None:
    """The ops blueprint is no longer exempt: it has
    nothing to exempt, and a POST there is not routed.
    """
    ops = [
        (rule, method) for rule, method in _unsafe_rules(app) if rule.endpoint.startswith("ops.")
    ]
    assert ops == []
    assert client.post("/healthz").status_code == 405


def test_one_click_unsubscribe_needs_no_cookie_but_a_valid_token(client: FlaskClient) -> None:
    """RFC 8058: a mail client POSTs with no session; a forged
    token gets the clear 400 page, not the CSRF refusal.
    """
    response = client.post(
        "/unsubscribe/not-a-signed-token", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert REFUSED not in page and "unsubscribe" in page.lower()
