"""Each search operator, table-driven, with the posts it must find; the same table runs on
PostgreSQL (tests/integration/test_search_operators_postgres.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from tests.support.factories import make_mail, post

LINKER, ERROR, RELEASE, OPS, REPLY = (
    "Linker error",
    "Error report",
    "Release date",
    "Ops linker",
    "Re: Linker error",
)
# (query string, the subjects it must find, exactly)
CASES: list[tuple[str, set[str]]] = [
    ("q=linker", {LINKER, ERROR, OPS, REPLY}),
    (
        'q="linker error"',
        {LINKER, OPS, REPLY},
    ),  # the reply's subject holds the phrase; ERROR's body has the words apart
    ("q=linker -windows", {LINKER, OPS, REPLY}),
    ('q=linker -"arm64 builds"', {ERROR, OPS, REPLY}),
    ("q=from:ann", {LINKER, OPS}),  # an author alone, no words
    ("q=from:Ann", {LINKER, OPS}),
    ("q=from:ben@corp.example linker", {ERROR, REPLY}),
    ("q=from:ann from:cy", {LINKER, OPS, RELEASE}),  # several from: are alternatives
    ("q=from:ann -ops", {LINKER}),
    ("q=subject:error", {LINKER, ERROR, REPLY}),
    ('q=subject:"linker error"', {LINKER, REPLY}),
    ("q=list:ops", {OPS}),
    ("q=list:ops linker", {OPS}),
    ("q=after:2026-03-05 linker", {ERROR, OPS}),  # on or after that day
    ("q=before:2026-03-02 linker", {LINKER}),  # before that day
    ("q=has:attachment", {LINKER}),
    ("q=has:attachment linker", {LINKER}),
    ("q=-error linker", set()),
    ("author=Ben", {ERROR, REPLY}),  # the form's author field alone
    ("q=candidate&author=cy", {RELEASE}),
]


def fill(db: sessionmaker[Session]) -> None:
    """Five posts on two lists, by three people, over five weeks."""
    with transaction(db) as session:
        lists.create(session, "ops")
    day = lambda d, m=3: datetime(2026, m, d, 12, 0, tzinfo=UTC)  # noqa: E731
    post(
        db,
        make_mail(
            LINKER,
            msgid="l@x",
            sender="Ann <ann@example.org>",
            date=day(1),
            body="the linker error appears on arm64 builds\n",
            attachments=[("log.txt", "text/plain", b"x\n")],
        ),
    )
    post(
        db,
        make_mail(
            REPLY,
            msgid="r@x",
            in_reply_to="l@x",
            sender="Ben <ben@corp.example>",
            date=day(2),
            body="error linker, said backwards\n",
        ),
    )
    post(
        db,
        make_mail(
            ERROR,
            msgid="e@x",
            sender="Ben <ben@corp.example>",
            date=day(10),
            body="an error in the linker step of windows builds\n",
        ),
    )
    post(
        db,
        make_mail(
            RELEASE,
            msgid="c@x",
            sender="Cy <cy@example.net>",
            date=day(2, 4),
            body="release candidate next week\n",
        ),
    )
    post(
        db,
        make_mail(
            OPS,
            msgid="o@x",
            to="ops@lists.test",
            sender="Ann <ann@example.org>",
            date=day(5),
            body="linker error on the ops box\n",
        ),
        list_name="ops",
    )


def subjects(page: str) -> set[str]:
    """The subjects of the results on a search page."""
    return set(re.findall(r'<h2><a href="/threads/\d+#m\d+">([^<]+)</a></h2>', page))


def run_table(app: Flask) -> list[str]:
    """Every case of the table; the ones that found something else, described."""
    client = app.test_client()
    wrong = []
    for query, expected in CASES:
        response = client.get(f"/search?{query}")
        found = subjects(response.get_data(as_text=True))
        if response.status_code != 200 or found != expected:
            wrong.append(
                f"{query}: {response.status_code} found {sorted(found)}, expected "
                f"{sorted(expected)}"
            )
    grouped = client.get("/search?q=linker&group=thread").get_data(as_text=True)
    counts = sorted(re.findall(r"(\d+) matching posts? in this thread", grouped))
    if counts != ["1", "1", "2"]:
        wrong.append(
            f"group=thread: counts {counts}, expected 1, 1 and 2 (the reply shares its thread)"
        )
    return wrong


def test_every_operator_on_sqlite(app: Flask, make_list: Any, db: sessionmaker[Session]) -> None:
    make_list("dev")
    fill(db)
    assert run_table(app) == []


def test_bad_operators_say_what_to_fix(client: Any, make_list: Any) -> None:
    make_list("dev")
    for query, words in (
        ("after:yesterday", "after: wants a date like 2026-03-01"),
        ("has:pictures", "has: knows only has:attachment"),
    ):
        response = client.get("/search", query_string={"q": query})
        assert response.status_code == 400 and words in response.get_data(as_text=True), query


def test_the_help_box_lists_every_operator(client: Any, make_list: Any) -> None:
    page = client.get("/search").get_data(as_text=True)
    for example in (
        '"exact phrase"',
        "-word",
        "from:ann",
        "subject:release",
        "list:dev",
        "after:2026-03-01",
        "before:2026-04-01",
        "has:attachment",
    ):
        assert f"<code>{example}</code>" in page.replace("&#34;", '"'), example


def test_a_minus_before_an_operator_never_finds_the_opposite(
    client: Any, make_list: Any, db: sessionmaker[Session]
) -> None:
    """-from:ann asks to leave Ann out: it must never answer with Ann's posts alone."""
    make_list("dev")
    fill(db)
    for query, only_what_was_left_out in (
        ("linker -from:ann", {LINKER, OPS}),
        ("-list:ops linker", {OPS}),
        ("linker -has:attachment", {LINKER}),
        ("linker -subject:ops", {OPS}),
    ):
        response = client.get("/search", query_string={"q": query})
        page = response.get_data(as_text=True)
        assert subjects(page) != only_what_was_left_out, query
        assert response.status_code == 400, query
        assert "a minus leaves out words and phrases only" in page, query
