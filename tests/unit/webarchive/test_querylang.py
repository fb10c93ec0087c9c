"""The search box's language: what each piece of text means, edge by edge (no database)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webarchive.reading.querylang import (
    MAX_AUTHOR,
    MAX_LIST,
    MAX_TERMS,
    MAX_TEXT,
    Query,
    QueryError,
    parse,
)

ADDRESS = f"{'b' * 64}@{'.'.join(['g' * 63] * 4)}"  # 64@255, the longest (RFC 5321)


def day(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)


# (what the user typed, the Query it means)
MEANINGS: list[tuple[str, Query]] = [
    ("", Query()),
    ("  \t ", Query()),
    (";; ,, ...", Query()),  # no word characters at all
    ("-", Query()),
    ('""', Query()),
    ('"   "', Query()),
    ('-""', Query()),
    # words: split on anything that is not a word character, case kept
    ("Linker error", Query(words=("Linker", "error"))),
    ("foo-bar a.b", Query(words=("foo", "bar", "a", "b"))),
    ("café 日本語 a_b", Query(words=("café", "日本語", "a_b"))),
    # quotes: a phrase needs two words; an unclosed quote runs to the end
    ('"linker error"', Query(phrases=(("linker", "error"),))),
    ('"linker"', Query(words=("linker",))),
    ('"linker, error', Query(phrases=(("linker", "error"),))),
    ('ab"cd ef"', Query(words=("ab",), phrases=(("cd", "ef"),))),
    ('"a"b', Query(words=("a", "b"))),
    # negation: a word or a phrase left out
    ("-windows", Query(excluded=(("windows",),))),
    ('-"arm64 builds"', Query(excluded=(("arm64", "builds"),))),
    ('-"linker"', Query(excluded=(("linker",),))),
    ("-foo-bar", Query(excluded=(("foo", "bar"),))),
    ("linker -windows", Query(words=("linker",), excluded=(("windows",),))),
    # field prefixes: lowercased values, any case of the operator's name
    ("from:Ann", Query(authors=("ann",))),
    ("FROM:ann", Query(authors=("ann",))),
    ('from:"Ann Smith"', Query(authors=("ann smith",))),
    ("from:ann from:cy", Query(authors=("ann", "cy"))),
    ("from:ann@example.org", Query(authors=("ann@example.org",))),
    ('from:ann"x y"', Query(authors=("ann",), phrases=(("x", "y"),))),
    ("from:" + "A" * 300, Query(authors=("a" * 300,))),  # all of it: an address has 320
    ('subject:"Release Date"', Query(subjects=("release date",))),
    ("subject:" + "b" * 300, Query(subjects=("b" * 300,))),
    ("list:Dev", Query(lists=("dev",))),
    ("after:2026-03-01", Query(after=day("2026-03-01"))),
    ("before:2026/04/01", Query(before=day("2026-04-01"))),
    ('after:"2026-03-01"', Query(after=day("2026-03-01"))),
    ("after:2026-03-01 after:2026-03-05", Query(after=day("2026-03-05"))),  # the last one
    ("has:attachment", Query(has_attachment=True)),
    ("has:Attachments", Query(has_attachment=True)),
    # a minus before an operator: leave out what the operator would find
    ("-from:ann", Query(not_authors=("ann",))),
    ("-FROM:Ann -from:ben@corp.example", Query(not_authors=("ann", "ben@corp.example"))),
    ('-from:"Ann Smith"', Query(not_authors=("ann smith",))),
    ("from:ann -from:ann@example.org", Query(authors=("ann",), not_authors=("ann@example.org",))),
    ("-from:" + "A" * 300, Query(not_authors=("a" * 300,))),
    ('-subject:"Release Date"', Query(not_subjects=("release date",))),
    ("-list:Dev -list:ops", Query(not_lists=("dev", "ops"))),
    ("list:dev -list:ops", Query(lists=("dev",), not_lists=("ops",))),
    ("-has:attachment", Query(no_attachment=True)),
    ("linker -HAS:Attachments", Query(words=("linker",), no_attachment=True)),
    ("has:attachment -has:attachment", Query(has_attachment=True, no_attachment=True)),
    ('-from:""', Query()),
    # -after: is before: (leave out posts on or after the day), -before: is after:
    ("-after:2026-03-01", Query(before=day("2026-03-01"))),
    ("-before:2026/04/01", Query(after=day("2026-04-01"))),
    ("-after:2026-03-05 -after:2026-03-01", Query(before=day("2026-03-01"))),  # the last one
    # with the positive bound the same way, both hold: the tighter bound
    ("before:2026-03-01 -after:2026-04-01", Query(before=day("2026-03-01"))),
    ("-after:2026-03-01 before:2026-04-01", Query(before=day("2026-03-01"))),
    ("after:2026-03-05 -before:2026-03-01", Query(after=day("2026-03-05"))),
    ("-before:2026-03-05 after:2026-03-01", Query(after=day("2026-03-05"))),
    # an operator with nothing after it
    ("from:", Query(words=("from",))),
    ("from: ann", Query(words=("from", "ann"))),
    ('from:""', Query()),
    ('after:""', Query()),
    ('has:""', Query()),
    # unknown fields are words, never a phrase
    ("re:linker", Query(words=("re", "linker"))),
    ("http://example.org/x", Query(words=("http", "example", "org", "x"))),
    ('re:"linker error"', Query(words=("re", "linker", "error"))),
    ("-re:linker", Query(excluded=(("re", "linker"),))),
    ('re:""', Query(words=("re",))),
    ("x1:y día:z", Query(words=("x1", "y", "día", "z"))),
    # everything at once
    (
        'from:ann "linker error" -windows -from:bot -list:ops -subject:ci -before:2026-01-01 '
        "-has:attachment kernel",
        Query(
            words=("kernel",),
            phrases=(("linker", "error"),),
            excluded=(("windows",),),
            authors=("ann",),
            not_authors=("bot",),
            not_subjects=("ci",),
            not_lists=("ops",),
            after=day("2026-01-01"),
            no_attachment=True,
        ),
    ),
    (
        'from:ann "linker error" -windows list:dev after:2026-03-01 has:attachment kernel',
        Query(
            words=("kernel",),
            phrases=(("linker", "error"),),
            excluded=(("windows",),),
            authors=("ann",),
            lists=("dev",),
            after=day("2026-03-01"),
            has_attachment=True,
        ),
    ),
    # up to MAX_TEXT characters are read to the end, the spaces around not counted
    ("x" * 993 + " linker", Query(words=("x" * 993, "linker"))),
    ("  " + "x" * 993 + " linker\n", Query(words=("x" * 993, "linker"))),
    # an operator's value is read to its end, up to the longest thing it can find
    (f"from:{ADDRESS.upper()}", Query(authors=(ADDRESS,))),
    (f'-from:"{"n " * 160}"', Query(not_authors=("n " * 159 + "n",))),
    ("list:" + "L" * 64, Query(lists=("l" * 64,))),  # a list name has 64 at most
    ("-list:" + "l" * 64, Query(not_lists=("l" * 64,))),
    (f'subject:"{"s " * 495}"', Query(subjects=("s " * 494 + "s",))),  # a subject has 2,000
    ("-subject:" + "s" * 991, Query(not_subjects=("s" * 991,))),
    # at most MAX_TERMS terms, a phrase or an excluded phrase counting as one
    (" ".join(["w"] * MAX_TERMS), Query(words=("w",) * MAX_TERMS)),
    (
        " ".join(["w"] * (MAX_TERMS - 2)) + ' "a b" -"c d"',
        Query(words=("w",) * (MAX_TERMS - 2), phrases=(("a", "b"),), excluded=(("c", "d"),)),
    ),
]

# (what the user typed, what the error must say)
MISTAKES: list[tuple[str, str]] = [
    ("after:yesterday", "after: wants a date like 2026-03-01, not 'yesterday'"),
    ("before:2026-13-01", "before: wants a date like 2026-03-01, not '2026-13-01'"),
    ("after:" + "9" * 60, "after: wants a date like 2026-03-01, not '" + "9" * 40 + "'"),
    ("has:pictures", "has: knows only has:attachment, not has:pictures"),
    ("-has:pictures", "has: knows only has:attachment, not has:pictures"),
    ("-after:yesterday", "after: wants a date like 2026-03-01, not 'yesterday'"),
    ("-before:2026-13-01", "before: wants a date like 2026-03-01, not '2026-13-01'"),
    ("linker has:pictures after:2026-03-01", "has: knows only has:attachment"),
    (" ".join(["w"] * (MAX_TERMS + 1)), f"too many words: at most {MAX_TERMS}"),
    ("a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u", f"too many words: at most {MAX_TERMS}"),
    (
        " ".join(["w"] * (MAX_TERMS - 1)) + ' "a b" -c',
        f"too many words: at most {MAX_TERMS}",
    ),
    ("x" * 994 + " linker", "too long: at most 1,000 characters (this one has 1,001)"),
    (f"from:{ADDRESS}x", "from: too long: at most 320 characters (this one has 321)"),
    (f'-from:"{"n " * 161}"', "from: too long: at most 320 characters (this one has 321)"),
    (f"linker -from:{'a' * 400}", "from: too long: at most 320 characters (this one has 400)"),
    ("list:" + "l" * 65, "list: too long: at most 64 characters (this one has 65)"),
    ("-list:" + "l" * 65, "list: too long: at most 64 characters (this one has 65)"),
    ("list:" + "x" * 100, "list: too long: at most 64 characters (this one has 100)"),
]


@pytest.mark.parametrize("text,meaning", MEANINGS)
def test_what_a_search_means(text: str, meaning: Query) -> None:
    assert parse(text) == meaning


@pytest.mark.parametrize("text,words", MISTAKES)
def test_a_search_to_fix_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text)
    assert words in str(caught.value)


PIECES = st.sampled_from(
    [
        "from:",
        "subject:",
        "list:",
        "after:",
        "before:",
        "has:",
        "re:",
        "FROM:",
        "-",
        '"',
        " ",
        "attachment",
        "2026-03-01",
        "2026/04/01",
        "ann@example.org",
        "word",
        "é",
        ",",
    ]
)
TEXTS = st.lists(PIECES | st.text(max_size=8), max_size=30).map("".join)


@given(TEXTS)
def test_any_text_is_a_query_or_a_message_to_fix(text: str) -> None:
    """Nothing typed in the box breaks the parser, and what it keeps stays within its limits."""
    query = _outcome(text)
    if isinstance(query, str):
        assert query  # the message to show
        return
    assert all(re.fullmatch(r"\w+", w) for w in query.words)
    assert all(len(p) > 1 for p in query.phrases)
    assert all(re.fullmatch(r"\w+", w) for p in query.phrases + query.excluded for w in p)
    assert len(query.words) + len(query.phrases) + len(query.excluded) <= MAX_TERMS
    authors, lists = query.authors + query.not_authors, query.lists + query.not_lists
    assert all(a == a.lower() and 0 < len(a) <= MAX_AUTHOR for a in authors)
    assert all(s == s.lower() and 0 < len(s) <= MAX_TEXT for s in query.subjects)
    assert all(s == s.lower() and 0 < len(s) <= MAX_TEXT for s in query.not_subjects)
    assert all(x == x.lower() and 0 < len(x) <= MAX_LIST for x in lists)


@given(TEXTS, TEXTS)
def test_a_search_longer_than_the_limit_is_a_message_never_a_shorter_search(
    head: str, tail: str
) -> None:
    """Past MAX_TEXT characters the box is not read in part: the answer says the limit."""
    text = f"w {head}"[: MAX_TEXT - 1].ljust(MAX_TEXT - 1) + "x"
    assert len(text) == MAX_TEXT
    assert not str(_outcome(text)).startswith("too long")
    assert _outcome(f"  {text}\n") == _outcome(text)  # the spaces around are not the search
    longer = text + (tail.strip() or "y")
    assert (
        _outcome(longer)
        == f"too long: at most {MAX_TEXT:,} characters (this one has {len(longer):,})"
    )


@given(st.sampled_from(["from", "list"]), st.booleans(), TEXTS, st.integers(-2, 2))
def test_an_operator_value_is_read_whole_or_refused_never_cut(
    op: str, negated: bool, text: str, over: int
) -> None:
    """A from: or list: value near its limit: searched whole, or the answer says the limit."""
    limit = {"from": MAX_AUTHOR, "list": MAX_LIST}[op]
    value = (text.replace('"', "").strip() + "v" * limit)[: limit + over].strip()
    outcome = _outcome(f'{"-" if negated else ""}{op}:"{value}"')
    if len(value) > limit:
        assert outcome == f"{op}: too long: at most {limit} characters (this one has {len(value)})"
    else:
        assert isinstance(outcome, Query)
        kept = {
            "from": outcome.not_authors if negated else outcome.authors,
            "list": outcome.not_lists if negated else outcome.lists,
        }[op]
        assert kept == (value.lower(),)


def _outcome(text: str) -> Query | str:
    try:
        return parse(text)
    except QueryError as exc:
        return str(exc)


@given(TEXTS)
def test_the_engines_text_means_the_same_search(text: str) -> None:
    """The words handed to PostgreSQL, typed in the box again, are the same words."""
    try:
        query = parse(text)
    except QueryError:
        return
    again = parse(query.websearch())
    assert (again.words, again.phrases, again.excluded) == (
        query.words,
        query.phrases,
        query.excluded,
    )
