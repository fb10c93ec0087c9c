"""Numbers no database id can be, on SQLite and PostgreSQL: a 4xx page or JSON error, never a 500.

Every route with a numeric part is found by walking the app's url_map, and asked for a 30-digit
number, 2**31 (one past PostgreSQL's Integer column) and "²" (a digit to str.isdigit, not to int):
each is a 404 like any id that does not exist. A query value that should be a number (a cursor's
id, a limit, a page, a thread) given one of them is a 400 that says what is wrong.

Digits of other scripts (Arabic-Indic ٣, Devanagari ३, fullwidth ３) are digits to int() and to a
regular expression's \\d: a route part or query value spelled with them is refused like any other
non-number, never read as the ASCII number it looks like (/lists/dev/٢٠٢٦/٣ is not March 2026).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import IntegerConverter, Rule

from listgate import lists
from listgate.db import transaction
from tests.support.factories import make_mail, post

pytestmark = pytest.mark.integration

HUGE = "9" * 30
NUMBERS = (HUGE, str(2**31), "²")
_PART = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
SCRIPTS = {"arabic-indic": 0x0660, "devanagari": 0x0966, "fullwidth": 0xFF10}
_DIGIT = re.compile("[0-9]")


def _in(script: str, ascii_number: str) -> str:
    """ascii_number's digits in another script ("2026" -> "٢٠٢٦")."""
    return _DIGIT.sub(lambda m: chr(SCRIPTS[script] + int(m.group())), ascii_number)


@pytest.fixture(params=["sqlite", "postgres"])
def web(request: pytest.FixtureRequest) -> tuple[Flask, int, int]:
    """The archive on either database with one post on "dev": (app, its thread id, its id)."""
    if request.param == "sqlite":
        app: Flask = request.getfixturevalue("app")
        db: sessionmaker[Session] = request.getfixturevalue("db")
    else:
        app, db = request.getfixturevalue("pg_web")
    with transaction(db) as session:
        lists.create(session, "dev")
    res = post(db, make_mail("Root", msgid="r@x"))
    assert res.thread_id and res.message_pk  # archived, so numbered
    return app, res.thread_id, res.message_pk


def _numeric_routes(app: Flask) -> Iterator[tuple[Rule, set[str]]]:
    for rule in app.url_map.iter_rules():
        numeric = {n for n, c in rule._converters.items() if isinstance(c, IntegerConverter)}
        if numeric:
            yield rule, numeric


def _fill(rule: Rule, values: dict[str, str]) -> str:
    """The rule's path with each part given in values, the others "dev" (the list's name)."""
    return _PART.sub(lambda m: values.get(m.group(1), "dev"), rule.rule)


def _path(rule: Rule, numeric: set[str], number: str) -> str:
    return _fill(rule, dict.fromkeys(numeric, number))


def _assert_refused(client: FlaskClient, method: str, path: str, code: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == code, (method, path, response.get_data(as_text=True)[:300])
    if path.startswith("/api/"):
        assert response.get_json()["status"] == code, path
    else:
        assert f"<h1>{code} ·" in response.get_data(as_text=True), path


def test_every_numeric_route_answers_404_for_a_number_no_id_can_be(
    web: tuple[Flask, int, int],
) -> None:
    app, thread_id, _ = web
    client = app.test_client()
    assert client.get(f"/threads/{thread_id}").status_code == 200  # the real one is there
    walked = list(_numeric_routes(app))
    assert len(walked) >= 20, [r.rule for r, _ in walked]  # the walk sees the routes
    for rule, numeric in walked:
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for number in NUMBERS:
            _assert_refused(client, methods[0], _path(rule, numeric, number), 404)


def test_a_query_value_no_number_can_be_is_a_400_that_says_so(web: tuple[Flask, int, int]) -> None:
    app, thread_id, message_pk = web
    client = app.test_client()
    author = f"/lists/dev/authors/{message_pk}"
    # well-made values are answered: the 400s below are the numbers' doing
    for fine in (
        "/lists/dev/?after=1000_5",
        "/api/lists/dev/threads?cursor=1000_5&limit=5",
        f"{author}?before=1000_5",
        f"/search?q=root&thread={thread_id}&page=1",
    ):
        assert client.get(fine).status_code == 200, fine
    for number in NUMBERS:
        for path in (
            f"/lists/dev/?after=1000_{number}",
            f"/api/lists/dev/threads?cursor=1000_{number}",
            f"{author}?before=1000_{number}",
            f"/api/lists/dev/threads?limit={number}",
            f"/search?q=root&thread={number}",
            f"/search/feed?q=root&thread={number}",
            f"/search?q=root&page={number}",
        ):
            _assert_refused(client, "GET", path, 400)


def test_a_query_value_in_another_scripts_digits_is_a_400(web: tuple[Flask, int, int]) -> None:
    app, thread_id, message_pk = web
    client = app.test_client()
    author = f"/lists/dev/authors/{message_pk}"
    for script in SCRIPTS:
        n = _in(script, str(thread_id))
        micros, day = _in(script, "1000"), f"{_in(script, '2026')}-03-01"
        for path in (
            f"/lists/dev/?after={micros}_5",
            f"/api/lists/dev/threads?cursor={micros}_5",
            f"{author}?before={micros}_5",
            f"/api/lists/dev/threads?limit={_in(script, '5')}",
            f"/search?q=root&thread={n}",
            f"/search?q=root&page={_in(script, '1')}",
            f"/search?q=root&since={day}",
            f"/search?q=root&until={day}",
            f"/search/feed?q=root&since={day}",
            f"/search/feed?q=root+before:{day}",
        ):
            _assert_refused(client, "GET", path, 400)
        # the search page shows an operator's problem beside the query box, answered 400
        answer = client.get(f"/search?q=root+after:{day}")
        assert answer.status_code == 400
        assert "after: wants a date like 2026-03-01" in answer.get_data(as_text=True)


def test_every_numeric_route_refuses_another_scripts_digits(
    app: Flask, db: sessionmaker[Session]
) -> None:
    """Each numeric part in turn, spelled in another script, of a path that is otherwise real."""
    with transaction(db) as session:
        lists.create(session, "dev")
    res = post(db, make_mail("Root", msgid="r@x"))  # dated March 2026
    real = {"thread_id": res.thread_id, "message_pk": res.message_pk, "year": 2026, "month": 3}
    client = app.test_client()
    for served in ("/lists/dev/2026/3", "/lists/dev/2026/03"):  # ASCII is, with a month's 0 too
        assert "Root" in client.get(served).get_data(as_text=True), served
    walked = list(_numeric_routes(app))
    assert {"year", "month"} <= set().union(*(n for _, n in walked))  # the month routes are walked
    for rule, numeric in walked:
        method = min((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for part in numeric:
            for script in SCRIPTS:
                spelled = {n: str(real.get(n, 1)) for n in numeric}
                spelled[part] = _in(script, spelled[part])
                _assert_refused(client, method, _fill(rule, spelled), 404)
