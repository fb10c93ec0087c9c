"""Search values as long as what they search: read to their end up to the limit of the thing
searched, a 400 naming the field and the limit past it (page and feed), never a shorter search.
The same table runs on PostgreSQL (tests/integration/test_search_operators_postgres.py)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from flask import Flask
from sqlalchemy import String
from sqlalchemy.orm import Session, sessionmaker

from listgate.db import transaction
from listgate.mail.parser import parse
from listgate.models import MailingList, Message
from tests.support.factories import make_mail, post
from webarchive.reading.querylang import MAX_AUTHOR, MAX_LIST, MAX_TEXT

# two addresses alike in their first 200 characters: SHORT is LONG's first 200
SHORT = f"{'a' * 64}@{'d' * 60}.{'e' * 60}.{'f' * 13}"
LONG = f"{'a' * 64}@{'d' * 60}.{'e' * 60}.{'f' * 60}.example"
LONGEST = f"{'b' * 64}@{'.'.join(['g' * 63] * 4)}"  # 64@255, RFC 5321's longest
# two names alike in their first 200 characters (a name is stored up to 255)
NAME, OTHER_NAME = "Ann " + "o" * 210 + " Smith", "Ann " + "o" * 210 + " Jones"
# two subjects alike in their first 200 characters
SUBJECT = "Release plan " + "step " * 50 + "for arm64"
OTHER_SUBJECT = "Release plan " + "step " * 50 + "for riscv"
# a list named before list names were capped at 32: the name column holds 64
OLD_LIST = "l" * 64
BY_SHORT, BY_LONG, BY_LONGEST = "By the short address", "By the long address", "By the longest"
BY_NAME, BY_OTHER_NAME, ON_OLD_LIST = "By Ann Smith", "By Ann Jones", "On the old list"
EVERYTHING = {BY_SHORT, BY_LONG, BY_LONGEST, BY_NAME, BY_OTHER_NAME, SUBJECT, OTHER_SUBJECT}
EVERYTHING |= {ON_OLD_LIST}

# (the search's fields, the subjects it must find, exactly)
READ_WHOLE: list[tuple[dict[str, str], set[str]]] = [
    ({"q": f"from:{LONG}"}, {BY_LONG}),
    ({"q": f"from:{SHORT}"}, {BY_SHORT}),
    ({"q": f"-from:{LONG}"}, EVERYTHING - {BY_LONG}),
    ({"author": LONG}, {BY_LONG}),
    ({"q": f"from:{LONGEST}"}, {BY_LONGEST}),
    ({"author": LONGEST}, {BY_LONGEST}),
    ({"q": f'from:"{NAME}"'}, {BY_NAME}),
    ({"q": f'-from:"{NAME}"'}, EVERYTHING - {BY_NAME}),
    ({"author": NAME}, {BY_NAME}),
    ({"q": f'subject:"{SUBJECT}"'}, {SUBJECT}),
    ({"q": f'-subject:"{SUBJECT}"'}, EVERYTHING - {SUBJECT}),
    ({"q": f"list:{OLD_LIST}"}, {ON_OLD_LIST}),
    ({"list": OLD_LIST, "author": "cy@example.net"}, {ON_OLD_LIST}),
    ({"q": f"-list:{OLD_LIST}"}, EVERYTHING - {ON_OLD_LIST}),
]
# (the search's fields, the whole message it must answer with a 400)
REFUSED: list[tuple[dict[str, str], str]] = [
    ({"q": f"from:{LONGEST}x"}, "from: too long: at most 320 characters (this one has 321)"),
    ({"q": f"-from:{LONGEST}x"}, "from: too long: at most 320 characters (this one has 321)"),
    (
        {"q": f'from:"{NAME} {"x" * 100}"'},
        "from: too long: at most 320 characters (this one has 321)",
    ),
    ({"author": f"{LONGEST}x"}, "author: too long: at most 320 characters (this one has 321)"),
    ({"q": f"list:{OLD_LIST}l"}, "list: too long: at most 64 characters (this one has 65)"),
    ({"q": f"-list:{OLD_LIST}l"}, "list: too long: at most 64 characters (this one has 65)"),
    ({"list": f"{OLD_LIST}l"}, "list: too long: at most 64 characters (this one has 65)"),
]
# page= and thread= values that are no number the database can hold: "²" is a digit to Python
NOT_NUMBERS = ("²", "٣", "9" * 30, "9" * 5000, "0x1", "-1", "0", str(2**31))


def fill_limits(db: sessionmaker[Session]) -> None:
    """Posts by authors, with subjects and on a list, each alike another in its first 200."""
    with transaction(db) as session:
        session.add(MailingList(name=OLD_LIST, title="An old list"))
    for subject, sender, list_name in (
        (BY_SHORT, f"Short <{SHORT}>", "dev"),
        (BY_LONG, f"Long <{LONG}>", "dev"),
        (BY_LONGEST, f"Longest <{LONGEST}>", "dev"),
        (BY_NAME, f'"{NAME}" <ann@example.org>', "dev"),
        (BY_OTHER_NAME, f'"{OTHER_NAME}" <jones@example.org>', "dev"),
        (SUBJECT, "Cy <cy@example.net>", "dev"),
        (OTHER_SUBJECT, "Cy <cy@example.net>", "dev"),
        (ON_OLD_LIST, "Cy <cy@example.net>", OLD_LIST),
    ):
        to = f"{list_name}@lists.test"
        post(db, make_mail(subject, sender=sender, to=to), list_name=list_name)


def _subjects(page: str) -> set[str]:
    found = re.findall(r'<h2><a href="/threads/\d+#m\d+">([^<]+)</a></h2>', page)
    return {" ".join(s.split()) for s in found}


def run_limits(app: Flask) -> list[str]:
    """Every case of both tables and every number; the ones answered otherwise, described."""
    client = app.test_client()
    wrong = []
    for fields, expected in READ_WHOLE:
        response = client.get("/search", query_string=fields)
        found = _subjects(response.get_data(as_text=True))
        feed = client.get("/search/feed", query_string=fields)
        titles = set(re.findall(r"<title>([^<]+)</title>", feed.get_data(as_text=True)))
        if response.status_code != 200 or found != expected or titles & EVERYTHING != expected:
            wrong.append(f"{_short(fields)}: {response.status_code} found {sorted(found)}")
    for fields, message in REFUSED:
        response, feed = (client.get(p, query_string=fields) for p in ("/search", "/search/feed"))
        page = response.get_data(as_text=True)
        shown = re.findall(r'<p class="flash error" role="alert">([^<]*)</p>', page)
        if (response.status_code, shown, _subjects(page)) != (400, [message], set()) or (
            feed.status_code != 400 or message not in feed.get_data(as_text=True)
        ):
            wrong.append(f"{_short(fields)}: {response.status_code} {shown}, feed {feed.status}")
    return wrong + _numbers(client)


def _numbers(client: Any) -> list[str]:
    """A page or thread that is no number (or none stored): a 400 naming the field, never a 500."""
    wrong = []
    for field, paths, says in (
        ("page", ("/search",), "page must be a number from 1 to 50"),  # the feed has one page
        ("thread", ("/search", "/search/feed"), "thread must be a thread number"),
    ):
        for raw, path in itertools.product(NOT_NUMBERS, paths):
            response = client.get(path, query_string={"q": "release", field: raw})
            if response.status_code != 400 or says not in response.get_data(as_text=True):
                wrong.append(f"{path} {field}={raw[:12]}: {response.status_code}")
    largest = client.get("/search", query_string={"q": "release", "thread": str(2**31 - 1)})
    if largest.status_code != 200 or _subjects(largest.get_data(as_text=True)):
        wrong.append(f"thread={2**31 - 1}: {largest.status_code}")
    return wrong


def _short(fields: dict[str, str]) -> str:
    """The fields of a search, each value shortened to be read in a failure."""
    return " ".join(f"{k}={v[:30]}…{v[-12:]}({len(v)})" for k, v in fields.items())


def test_values_as_long_as_what_they_search_on_sqlite(
    app: Flask, make_list: Any, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    fill_limits(db)
    assert run_limits(app) == []


def test_the_limits_are_those_of_what_is_searched() -> None:
    """from: as long as a stored address (a name is shorter), list: as a stored list name, and a
    stored subject longer than any search: no value that could find a post is refused."""
    assert _length(Message.from_addr) == MAX_AUTHOR
    assert _length(Message.from_name) < MAX_AUTHOR
    assert _length(MailingList.name) == MAX_LIST
    assert len(LONGEST) == MAX_AUTHOR and len(OLD_LIST) == MAX_LIST
    stored = parse(make_mail("word " * 600, sender=f"Longest <{LONGEST}>"))
    assert len(stored.subject) > MAX_TEXT and stored.from_addr == LONGEST


def _length(column: Any) -> int:
    """The most characters a model's string column holds."""
    kind = column.property.columns[0].type
    assert isinstance(kind, String) and kind.length is not None
    return kind.length


def test_a_thread_number_finds_its_thread(
    client: Any, make_list: Any, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    thread_id = post(db, make_mail("Widget", body="widget\n")).thread_id
    post(db, make_mail("Widget too", body="widget\n"))
    found = client.get("/search", query_string={"q": "widget", "thread": str(thread_id)})
    assert found.status_code == 200 and _subjects(found.get_data(as_text=True)) == {"Widget"}
