"""Full-text search on the embedded default (SQLite FTS5), kept current by triggers."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate.db import transaction
from listgate.models import Message
from listgate.states import PostState
from tests.support.factories import MakeList, make_mail, post
from webarchive.reading.fulltext import highlight, mask_snippet
from webarchive.reading.querylang import parse


def _subjects(page: str) -> list[str]:
    return re.findall(r'<h2><a href="/threads/\d+#m\d+">([^<]+)</a></h2>', page)


def test_fts5_query_quotes_every_word() -> None:
    assert parse('kernel "panic" OR x*').fts5(prefix=True) == '"kernel" "panic" "OR" "x"*'
    assert parse("  ;; ").fts5(prefix=True) == ""


def test_snippets_are_escaped_and_highlighted_without_leaking_addresses() -> None:
    assert highlight("<b>\x02word\x03</b>") == "&lt;b&gt;<mark>word</mark>&lt;/b&gt;"
    assert "example" not in mask_snippet("mail bob@\x02example\x03.com today")
    assert highlight("x \x02bob@example.com\x03 y").count("<mark>") == highlight(
        "x \x02bob@example.com\x03 y"
    ).count("</mark>")


def test_search_finds_new_posts_at_once_with_highlights(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    post(
        db,
        make_mail("Scheduler bug", msgid="a@x.test", body="The scheduler deadlocks under load.\n"),
    )
    post(db, make_mail("Unrelated", msgid="b@x.test", body="Nothing to see.\n"))
    page = client.get("/search?q=deadlocks").get_data(as_text=True)
    assert _subjects(page) == ["Scheduler bug"]
    assert "<mark>deadlocks</mark>" in page


def test_search_filters_by_list_author_date_and_thread(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    make_list("ops")
    root = post(
        db,
        make_mail(
            "Disk full", msgid="d1@x", sender="Alice <alice@example.org>", body="disk alarm\n"
        ),
    )
    post(
        db,
        make_mail(
            "Re: Disk full",
            msgid="d2@x",
            in_reply_to="d1@x",
            sender="Bob <bob@example.org>",
            body="disk alarm again\n",
        ),
    )
    post(
        db,
        make_mail(
            "Disk",
            msgid="o1@x",
            to="ops@lists.test",
            sender="Carol <carol@example.org>",
            body="disk alarm ops\n",
        ),
        list_name="ops",
    )
    assert len(_subjects(client.get("/search?q=disk").get_data(as_text=True))) == 3
    assert _subjects(client.get("/search?q=disk&list=ops").get_data(as_text=True)) == ["Disk"]
    assert _subjects(client.get("/search?q=disk&author=bob").get_data(as_text=True)) == [
        "Re: Disk full"
    ]
    assert (
        len(_subjects(client.get(f"/search?q=disk&thread={root.thread_id}").get_data(as_text=True)))
        == 2
    )
    assert _subjects(client.get("/search?q=disk&since=2030-01-01").get_data(as_text=True)) == []
    assert (
        len(
            _subjects(
                client.get("/search?q=disk&since=2026-03-01&until=2026-03-01").get_data(
                    as_text=True
                )
            )
        )
        == 3
    )


def test_search_is_paginated(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    for i in range(25):
        post(db, make_mail(f"Widget {i}", msgid=f"w{i}@x", body="widget report\n"))
    first = client.get("/search?q=widget&sort=date").get_data(as_text=True)
    assert len(_subjects(first)) == 20 and 'rel="next"' in first
    second = client.get("/search?q=widget&sort=date&page=2").get_data(as_text=True)
    assert len(_subjects(second)) == 5 and 'rel="next"' not in second


def test_search_never_shows_private_held_or_hidden_posts(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("secret", private=True)
    make_list("mod", policy="moderated")
    make_list("dev")
    post(
        db,
        make_mail("Hush", msgid="s@x.test", to="secret@lists.test", body="zebra\n"),
        list_name="secret",
    )
    post(
        db,
        make_mail("Held", msgid="h@x.test", to="mod@lists.test", body="zebra\n"),
        list_name="mod",
    )
    hidden = post(db, make_mail("Hidden", msgid="x@x.test", body="zebra\n"))
    with transaction(db) as session:
        session.get_one(Message, hidden.message_pk).status = PostState.HIDDEN
    assert _subjects(client.get("/search?q=zebra").get_data(as_text=True)) == []
    assert _subjects(client.get("/search?q=zebra&list=secret").get_data(as_text=True)) == []


def test_search_feed_is_atom(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    post(db, make_mail("Feed me", msgid="f@x.test", body="atom test\n"))
    response = client.get("/search/feed?q=atom")
    assert response.mimetype == "application/atom+xml"
    assert b"<title>Feed me</title>" in response.data


def test_bad_search_parameters_are_400(client: FlaskClient, make_list: MakeList) -> None:
    make_list("dev")
    for query in ("q=x&since=yesterday", "q=x&page=0", "q=x&page=9999", "q=x&thread=abc"):
        assert client.get(f"/search?{query}").status_code == 400, query


def test_best_match_puts_the_post_about_the_words_first_and_finds_word_starts(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    post(
        db,
        make_mail(
            "Lunch",
            msgid="l@x.test",
            body="We had lunch. Also a word on the scheduler.\n" + "filler text\n" * 40,
        ),
    )
    post(
        db,
        make_mail(
            "Scheduler latency",
            msgid="s@x.test",
            body="The scheduler adds latency; scheduler latency grows.\n",
        ),
    )
    post(db, make_mail("Later", msgid="z@x.test", body="nothing relevant\n"))
    assert _subjects(client.get("/search?q=scheduler+latency").get_data(as_text=True)) == [
        "Scheduler latency"
    ]
    assert (
        _subjects(client.get("/search?q=scheduler").get_data(as_text=True))[0]
        == "Scheduler latency"
    )
    # a word being typed still finds posts (the last word
    # is also a prefix when whole words find too few)
    assert (
        _subjects(client.get("/search?q=schedu").get_data(as_text=True))[0] == "Scheduler latency"
    )


def test_author_address_filter_and_snippet_around_the_match(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    post(
        db,
        make_mail(
            "One",
            msgid="1@x.test",
            sender="Ann <ann@example.org>",
            body="intro " * 80 + "the quokka appears\n",
        ),
    )
    post(
        db,
        make_mail("Two", msgid="2@x.test", sender="Ben <ben@example.org>", body="a quokka too\n"),
    )
    page = client.get("/search?q=quokka&author=ann%40example.org").get_data(as_text=True)
    assert _subjects(page) == ["One"]
    assert "<mark>quokka</mark> appears" in page and "…" in page


def test_make_snippet_marks_whole_words_and_the_last_as_prefix() -> None:
    from webarchive.reading.snippets import make_snippet, token_pattern

    snip = make_snippet(
        "signals and a signal handler, handlers",
        token_pattern(["signal", "handl"], prefix_last=True),
    )
    assert highlight(snip) == (
        "signals and a <mark>signal</mark> <mark>handler</mark>, <mark>handlers</mark>"
    )


def test_common_words_rank_the_newest_matches_and_page_on(
    client: FlaskClient,
    make_list: MakeList,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from webarchive.reading import fulltext

    # every word counts as common: the newest matches are scored
    monkeypatch.setattr(fulltext, "COMMON", 0)
    monkeypatch.setattr(fulltext, "CANDIDATES", 10)
    make_list("dev")
    for i in range(25):
        post(
            db,
            make_mail(
                f"Widget {i}",
                msgid=f"w{i}@x",
                body="widget report\n" + "padding words here\n" * (i % 3),
            ),
        )
    post(
        db,
        make_mail(
            "Gadget",
            msgid="g@x.test",
            body="a gadget, not a widget\n" + "padding words here\n" * 30,
        ),
    )
    first = _subjects(client.get("/search?q=widget").get_data(as_text=True))
    second = _subjects(client.get("/search?q=widget&page=2").get_data(as_text=True))
    assert len(first) == 20 and len(second) == 6 and not set(first) & set(second)
    assert "Gadget" not in first[:3]  # its subject lacks the word and its body is long
    assert _subjects(client.get("/search?q=widg").get_data(as_text=True))  # prefixes still work


def _long_search(tail: str) -> str:
    """Build fails, by nobody of 25 people, then tail: a search of 600 characters and more."""
    nobody = " ".join(f"-from:nobody{i:02d}@example.org" for i in range(25))
    return f"build {nobody} {tail}"


def test_a_long_search_is_read_to_its_last_operator(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    post(db, make_mail("Build fails", msgid="a@x", sender="Alice <alice@example.org>"))
    post(db, make_mail("Build fails too", msgid="b@x", sender="Bob <bob@corp.example>"))
    q = _long_search("-from:bob@corp.example")
    assert 600 <= len(q) <= 1000
    response = client.get("/search", query_string={"q": q})
    assert response.status_code == 200
    assert _subjects(response.get_data(as_text=True)) == ["Build fails"]
    feed = client.get("/search/feed", query_string={"q": q}).get_data(as_text=True)
    assert "<title>Build fails</title>" in feed and "Build fails too" not in feed


def test_a_search_over_the_limit_is_a_400_that_says_the_limit(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("dev")
    post(db, make_mail("Build fails", msgid="a@x", sender="Bob <bob@corp.example>"))
    q = _long_search("-from:bob@corp.example " + "x" * 400)
    assert len(q) > 1000
    response = client.get("/search", query_string={"q": q})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "too long: at most 1,000 characters" in page and _subjects(page) == []
    assert f'value="{q}"' in page  # kept in the box, to shorten
    feed = client.get("/search/feed", query_string={"q": q})
    assert feed.status_code == 400
    assert "too long: at most 1,000 characters" in feed.get_data(as_text=True)
    assert client.get("/search", query_string={"q": f"  {q[:1000]}  "}).status_code == 200


def test_a_search_in_a_thread_merged_away_searches_the_thread_it_joined(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    """A link or bookmark "search in this thread" from before two threads merged keeps working."""
    from listgate.threads import resolve
    from tests.support.factories import merged_pair

    make_list("dev")
    a, b = merged_pair(db)
    with db() as session:
        ids = {a.thread_id, b.thread_id}
        survivor = resolve(session, a.thread_id or 0)
        assert survivor is not None
        (gone,) = ids - {survivor.id}
    found = {
        t: _subjects(client.get(f"/search?q=text&thread={t}").get_data(as_text=True)) for t in ids
    }
    assert len(found[survivor.id]) == 3
    assert found[gone] == found[survivor.id]
