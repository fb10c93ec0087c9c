"""Each search operator, table-driven, with the posts it must find; the same table runs on
PostgreSQL (tests/integration/test_search_operators_postgres.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
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
    # a minus before an operator leaves out what the operator alone would find
    ("q=linker -from:ann", {ERROR, REPLY}),
    ("q=linker -from:Ann", {ERROR, REPLY}),
    ("q=-from:ann", {ERROR, REPLY, RELEASE}),  # no words: everything else, newest first
    ("q=linker -from:ben@corp.example", {LINKER, OPS}),  # one address, exactly
    ("q=linker -from:ben@corp", {LINKER, ERROR, OPS, REPLY}),  # not an address anybody has
    ("q=linker -from:corp", {LINKER, ERROR, OPS, REPLY}),  # from:corp finds nobody either
    ("q=-from:ann -from:ben", {RELEASE}),  # each one left out
    ("q=from:ann -from:ann", set()),
    ("q=linker -windows -from:ann", {REPLY}),  # a left-out word and a left-out author
    ("q=linker -subject:error", {OPS}),
    ('q=linker -subject:"linker error"', {ERROR, OPS}),
    ("q=linker -list:ops", {LINKER, ERROR, REPLY}),
    ("q=linker -list:dev", {OPS}),
    ("q=linker -list:nosuch", {LINKER, ERROR, OPS, REPLY}),  # no such list: nothing to leave out
    ("q=-list:dev&list=dev", set()),
    ("q=linker -has:attachment", {ERROR, OPS, REPLY}),
    ("q=-has:attachment -from:ben", {RELEASE, OPS}),
    ("q=has:attachment -has:attachment", set()),
    ("q=-from:ben -list:ops", {LINKER, RELEASE}),
    ("q=linker -from:ben -list:ops has:attachment", {LINKER}),
    ("q=linker -from:ann -list:dev has:attachment", set()),
    ('q="linker error" -from:ben -list:ops', {LINKER}),  # a phrase, then the left-out filters
    ("q=linker -from:ann&sort=date", {ERROR, REPLY}),
    ("q=linker -from:ann&author=ben", {ERROR, REPLY}),
    ("q=linker -from:ann&author=ann", set()),
    # -after: leaves out posts on or after the day (before:), -before: those before it (after:)
    ("q=linker -after:2026-03-05", {LINKER, REPLY}),
    ("q=linker -before:2026-03-05", {ERROR, OPS}),
    ("q=linker after:2026-03-02 -after:2026-03-06", {REPLY, OPS}),
    ("q=linker -after:2026-03-06 before:2026-03-02", {LINKER}),  # both bounds hold
    ("q=linker -before:2026-03-02&since=2026-03-06", {ERROR}),
]
# (text without the operator, an operator): with and without the minus, the two searches
# split what the text alone finds, nothing found by both, nothing by neither
SPLITS: list[tuple[str, str]] = [
    (text, operator)
    for text in ("linker", "", '"linker error"', "error -windows")
    for operator in (
        "from:ann",
        "from:ben@corp.example",
        "from:e",
        "subject:error",
        'subject:"linker error"',
        "list:ops",
        "list:dev",
        "has:attachment",
        "after:2026-03-05",
        "before:2026-03-02",
    )
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
    for query, expected_counts in (("linker", ["1", "1", "2"]), ("linker -from:ben", ["1", "1"])):
        grouped = client.get(f"/search?q={query}&group=thread").get_data(as_text=True)
        counts = sorted(re.findall(r"(\d+) matching posts? in this thread", grouped))
        if counts != expected_counts:
            wrong.append(f"{query} group=thread: counts {counts}, expected {expected_counts}")
    return wrong + _splits(client) + _feeds(client)


def _found(client: Any, text: str) -> set[str] | str:
    """The subjects a search finds, or what went wrong."""
    response = client.get("/search", query_string={"q": text})
    page = response.get_data(as_text=True)
    return subjects(page) if response.status_code == 200 else f"{response.status_code}"


def _splits(client: Any) -> list[str]:
    """Each operator and its minus: never both, always one, of what the text alone finds."""
    wrong = []
    for text, operator in SPLITS:
        everything = _found(client, text) if text else {LINKER, ERROR, RELEASE, OPS, REPLY}
        kept, left_out = (
            _found(client, f"{text} {operator}"),
            _found(client, f"{text} -{operator}"),
        )
        if (
            isinstance(kept, str)
            or isinstance(left_out, str)
            or isinstance(everything, str)
            or kept & left_out
            or kept | left_out != everything
        ):
            wrong.append(f"{text!r} {operator}: {kept}, -{operator}: {left_out} of {everything}")
    return wrong


def _feeds(client: Any) -> list[str]:
    """The search's Atom feed speaks the same language as the page."""
    feed = client.get("/search/feed", query_string={"q": "linker -from:ann -list:ops"})
    titles = set(re.findall(r"<title>([^<]+)</title>", feed.get_data(as_text=True)))
    entries = titles & {LINKER, ERROR, RELEASE, OPS, REPLY}
    if feed.status_code != 200 or entries != {ERROR, REPLY}:
        return [f"feed of 'linker -from:ann -list:ops': {feed.status_code} {sorted(entries)}"]
    return []


def fill_pages(db: sessionmaker[Session]) -> None:
    """Fifty posts about widgets, every other one by Ann, some of Ben's on the ops list."""
    with transaction(db) as session:
        lists.create(session, "ops")
    for i in range(50):
        on_ops = i % 4 == 1
        post(
            db,
            make_mail(
                f"Widget {i}",
                msgid=f"w{i}@x",
                to="ops@lists.test" if on_ops else "dev@lists.test",
                sender="Ann <ann@example.org>" if i % 2 == 0 else "Ben <ben@corp.example>",
                date=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=i),
                body="widget report\n",
            ),
            list_name="ops" if on_ops else "dev",
        )


def run_pages(app: Flask) -> list[str]:
    """Searches leaving posts out page through exactly the rest, once each, with no page short."""
    client = app.test_client()
    wrong = []
    for query, expected in (
        ("widget -from:ann", {f"Widget {i}" for i in range(1, 50, 2)}),  # 25: two pages
        ("-from:ann", {f"Widget {i}" for i in range(1, 50, 2)}),
        ("widget -from:ann&sort=date", {f"Widget {i}" for i in range(1, 50, 2)}),
        ("widget -list:ops", {f"Widget {i}" for i in range(50) if i % 4 != 1}),  # 37: two pages
        ("widget -list:dev -from:ann", {f"Widget {i}" for i in range(1, 50, 4)}),  # 13: one page
        ("widget -list:ops -from:ben", {f"Widget {i}" for i in range(0, 50, 2)}),  # 25
    ):
        shown: list[str] = []
        for page in (1, 2, 3):
            html = client.get(f"/search?q={query}&page={page}").get_data(as_text=True)
            found = re.findall(r'<h2><a href="/threads/\d+#m\d+">([^<]+)</a></h2>', html)
            full = len(shown) + 20 < len(expected)
            if len(found) != min(20, len(expected) - len(shown)) or ('rel="next"' in html) != full:
                wrong.append(f"{query} page {page}: {len(found)} shown, next link expected: {full}")
            shown += found
            if not full:
                break
        if sorted(shown) != sorted(expected):
            wrong.append(f"{query}: {len(shown)} shown, {len(set(shown))} different")
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
        "-from:ann",
        "-after:2026-03-01",
    ):
        assert f"<code>{example}</code>" in page.replace("&#34;", '"'), example


def test_a_minus_before_an_operator_leaves_out_what_it_finds(
    client: Any, make_list: Any, db: sessionmaker[Session]
) -> None:
    """-from:ann asks to leave Ann out: never Ann's posts alone, never a message to fix."""
    make_list("dev")
    fill(db)
    for query, everything_but in (
        ("linker -from:ann", {ERROR, REPLY}),
        ("-list:ops linker", {LINKER, ERROR, REPLY}),
        ("linker -has:attachment", {ERROR, OPS, REPLY}),
        ("linker -subject:ops", {LINKER, ERROR, REPLY}),
    ):
        response = client.get("/search", query_string={"q": query})
        assert response.status_code == 200, query
        assert subjects(response.get_data(as_text=True)) == everything_but, query


def test_leaving_posts_out_pages_on_sqlite(
    app: Flask, make_list: Any, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    fill_pages(db)
    assert run_pages(app) == []
    # SQLite also reads the last word as a prefix when whole words find nothing
    page = app.test_client().get("/search?q=widg -from:ben -list:ops").get_data(as_text=True)
    found = subjects(page)
    assert len(found) == 20 and found <= {f"Widget {i}" for i in range(0, 50, 2)}


def test_leaving_posts_out_pages_through_common_words(
    app: Flask, make_list: Any, db: sessionmaker[Session], monkeypatch: Any
) -> None:
    """The newest-candidates path for common words leaves out the same posts, page after page."""
    from webarchive.reading import fulltext

    monkeypatch.setattr(fulltext, "COMMON", 0)
    monkeypatch.setattr(fulltext, "CANDIDATES", 10)
    make_list("dev")
    fill_pages(db)
    assert run_pages(app) == []
