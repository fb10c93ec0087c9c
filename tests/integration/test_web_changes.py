"""A warm web process shows every change to a list's archive, even one that leaves its counts as
they were, on SQLite and PostgreSQL.

Each journey serves a page once (the web process remembers the answer), changes the archive
through the paths mail, moderators and `listgate import` take (the archiver's ingest_batch,
listgate.reports hide/restore, moderation approve, takedowns, list deletion) so that the list's
post count, thread count and last activity end where they were, and reads the page again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Unpack

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, moderation, reports
from listgate.addresses import Recipient
from listgate.administration import delete_list
from listgate.batches import Item, ingest_batch
from listgate.cli import main
from listgate.db import transaction
from listgate.ingest import IngestResult
from listgate.mail.parser import parse
from listgate.models import MailingList, Message
from listgate.removal import remove
from tests.support.config import env_for, migrated
from tests.support.factories import MailOptions, make_mail, stored_pk

pytestmark = pytest.mark.integration
MOD = "mod@example.org"


@dataclass
class Site:
    """One web app kept warm for the whole test, the database it reads, and its environment."""

    app: Flask
    client: FlaskClient
    db: sessionmaker[Session]
    env: dict[str, str]


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    from webarchive import create_app

    extra = (
        {"LISTGATE_DATABASE_URL": request.getfixturevalue("postgres_db")}
        if request.param == "postgresql"
        else {}
    )
    env = env_for(tmp_path, **extra)
    from listgate.config import Settings

    settings = Settings.from_env(env)
    db = migrated(settings)
    app = create_app(settings)
    try:
        yield Site(app, app.test_client(), db, env)
    finally:
        app.extensions["listgate"].engine.dispose()


def _archive(site: Site, raw: bytes, name: str = "dev") -> IngestResult:
    """One mail through the archiver's path (ingest_batch), committed."""
    with transaction(site.db) as session:
        [results] = ingest_batch(
            session, [Item(parse(raw), (Recipient(name),))], domain="lists.test"
        )
    assert isinstance(results, list) and results[0] is not None
    return results[0]


def _post(site: Site, subject: str, msgid: str, when: datetime, **kw: Unpack[MailOptions]) -> int:
    return stored_pk(_archive(site, make_mail(subject, msgid=msgid, date=when, **kw)))


def _months(client: FlaskClient) -> dict[str, int]:
    """The months page of dev as {"2026-03": posts}."""
    response = client.get("/lists/dev/months")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return {m: int(n) for m, n in re.findall(r">(\d{4}-\d\d)</a> <span[^>]*>(\d+) post", page)}


def _hide(site: Site, *pks: int, restore: tuple[int, ...] = ()) -> None:
    """Hide some posts and restore others, in one moderator's transaction."""
    with transaction(site.db) as session:
        for pk in pks:
            reports.hide(session, session.get_one(Message, pk))
        for pk in restore:
            reports.restore(session, session.get_one(Message, pk))


def _counts(site: Site) -> tuple[int, int, datetime | None]:
    with site.db() as session:
        mlist = lists.require(session, "dev")
        return mlist.message_count, mlist.thread_count, mlist.last_activity


def test_the_months_page_follows_changes_that_cancel_out(site: Site, tmp_path: Path) -> None:
    with transaction(site.db) as session:
        mlist = lists.create(session, "dev", policy="members")
        lists.subscribe(session, mlist, "alice@example.org")
    march = [
        _post(site, f"March {d}", f"m{d}@x", datetime(2026, 3, d, tzinfo=UTC)) for d in (1, 2, 3)
    ]
    held = _archive(
        site,
        make_mail(
            "Old stranger",
            sender="Bob <bob@example.org>",
            msgid="s@x",
            date=datetime(2025, 1, 20, tzinfo=UTC),
        ),
    )
    assert held.reason == "held for moderation"
    assert _months(site.client) == {"2026-03": 3}

    before = _counts(site)
    _hide(site, march[0])
    january = _post(site, "January", "j@x", datetime(2025, 1, 9, tzinfo=UTC))
    assert _counts(site) == before  # nothing the page could see moved but the posts
    assert _months(site.client) == {"2026-03": 2, "2025-01": 1}

    _hide(site, january, restore=(march[0],))
    assert _counts(site) == before
    assert _months(site.client) == {"2026-03": 3}

    with transaction(site.db) as session:
        reports.hide(session, session.get_one(Message, march[0]))
        moderation.approve(
            session, lists.require(session, "dev"), session.get_one(Message, held.message_pk), MOD
        )
    assert _counts(site) == before
    assert _months(site.client) == {"2026-03": 2, "2025-01": 1}

    _hide(site, march[1])
    mbox = tmp_path / "old.mbox"
    mail = make_mail("Older", msgid="o@x", date=datetime(2024, 6, 3, tzinfo=UTC))
    mbox.write_bytes(
        b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + mail.replace(b"\r\n", b"\n") + b"\n"
    )
    done = CliRunner(env=site.env).invoke(main, ["import", str(mbox), "--list", "dev", "--quiet"])
    assert done.exit_code == 0 and "imported:   1" in done.output, done.output
    assert _counts(site) == before
    assert _months(site.client) == {"2026-03": 1, "2025-01": 1, "2024-06": 1}


def test_the_activity_page_and_an_outline_follow_a_post_hidden_as_another_returns(
    site: Site,
) -> None:
    with transaction(site.db) as session:
        lists.create(session, "dev")
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    root = _post(site, "Plans", "p@x", start)
    bob = _post(
        site,
        "Re: Plans",
        "b@x",
        start + timedelta(hours=1),
        sender="Bob <bob@example.org>",
        in_reply_to="p@x",
    )
    carol = _post(
        site,
        "Re: Plans",
        "c@x",
        start + timedelta(hours=2),
        sender="Carol <carol@example.org>",
        in_reply_to="p@x",
    )
    _hide(site, carol)
    with site.db() as session:
        thread_id = session.get_one(Message, root).thread_id

    def outline() -> str:
        page = site.client.get(f"/threads/{thread_id}").get_data(as_text=True)
        return " | ".join(re.findall(r'<li class="d\d+"><a href="#m\d+">(#\d+ [^<]*)</a>', page))

    def people() -> str:
        page = site.client.get("/lists/dev/activity").get_data(as_text=True)
        return page[page.index("Most active people") :]

    assert outline() == "#1 Alice Example | #2 Bob | #3 (hidden post)"
    assert "Bob" in people() and "Carol" not in people()
    _hide(site, bob, restore=(carol,))
    assert outline() == "#1 Alice Example | #2 (hidden post) | #3 Carol"
    assert "Carol" in people() and "Bob" not in people()


def test_a_thread_page_shows_its_new_neighbours_when_an_earlier_copy_moves_a_reply(
    site: Site,
) -> None:
    """A second copy of a reply, dated earlier, answers another thread: the reply moves there,
    and the two threads' order by last activity turns, with no count of the list moving."""
    with transaction(site.db) as session:
        lists.create(session, "dev")
    t0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
    _post(site, "Plans", "a@x.test", t0)
    other = _archive(site, make_mail("Other", msgid="c@x.test", date=t0 + timedelta(hours=1)))
    _post(site, "Re: Plans", "b@x.test", t0 + timedelta(hours=3), references=["a@x.test"])
    page = site.client.get(f"/threads/{other.thread_id}").get_data(as_text=True)
    assert "Newer thread: Plans" in page and "Older thread" not in page
    before = _counts(site)
    copy = make_mail(
        "Re: Other",
        "first copy\n",
        msgid="b@x.test",
        date=t0 + timedelta(hours=2),
        references=["c@x.test"],
    )
    assert _archive(site, copy).status == "variant"
    assert _counts(site) == before
    page = site.client.get(f"/threads/{other.thread_id}").get_data(as_text=True)
    assert "Older thread: Plans" in page and "Newer thread" not in page


def test_a_list_made_again_after_its_deletion_shows_its_own_months(site: Site) -> None:
    with transaction(site.db) as session:
        lists.create(session, "dev")
    _post(site, "March", "m@x", datetime(2026, 3, 1, tzinfo=UTC))
    assert _months(site.client) == {"2026-03": 1}
    with transaction(site.db) as session:
        delete_list(session, lists.require(session, "dev"), MOD, purge=True)
    with transaction(site.db) as session:
        lists.create(session, "dev")
    _post(site, "April", "a@x", datetime(2026, 4, 1, tzinfo=UTC))
    assert _months(site.client) == {"2026-04": 1}


def test_a_takedown_of_a_hidden_root_renames_the_neighbour_it_was(site: Site) -> None:
    """Purging a hidden first post blanks its thread's subject: the next thread's link says so."""
    with transaction(site.db) as session:
        lists.create(session, "dev")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    first = _post(site, "Secret plans", "s@x", t0)
    _post(site, "Re: Secret plans", "r@x", t0 + timedelta(hours=1), in_reply_to="s@x")
    later = _archive(site, make_mail("Later", msgid="l@x", date=t0 + timedelta(days=1)))
    _hide(site, first)
    page = site.client.get(f"/threads/{later.thread_id}").get_data(as_text=True)
    assert "Older thread: Secret plans" in page
    with transaction(site.db) as session:
        remove(session, [session.get_one(Message, first)], "leaked", MOD, purge=True)
    page = site.client.get(f"/threads/{later.thread_id}").get_data(as_text=True)
    assert "Older thread: (removed)" in page and "Secret plans" not in page
    with site.db() as session:
        assert session.scalar(select(MailingList.changes).where(MailingList.name == "dev"))


def test_concurrent_writers_on_postgresql_lose_no_change(tmp_path: Path, postgres_db: str) -> None:
    """A moderator hiding and restoring while the archiver stores mail: every transaction counts."""
    from concurrent.futures import ThreadPoolExecutor

    from listgate.config import Settings

    db = migrated(Settings.from_env(env_for(tmp_path, LISTGATE_DATABASE_URL=postgres_db)))
    with transaction(db) as session:
        lists.create(session, "dev")
    site = Site(None, None, db, {})  # type: ignore[arg-type]  # _post reads only the database
    pk = _post(site, "Steady", "s@x", datetime(2026, 3, 1, tzinfo=UTC))
    with db() as session:
        start = session.execute(select(MailingList.changes)).scalar_one()
    rounds = 20

    def moderate() -> None:
        for i in range(rounds):
            _hide(site, *(() if i % 2 else (pk,)), restore=(pk,) if i % 2 else ())

    def archive() -> None:
        for i in range(rounds):
            _post(
                site, f"New {i}", f"n{i}@x", datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=i)
            )

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(moderate), pool.submit(archive)]:
            done.result()
    with db() as session:
        assert session.scalar(select(MailingList.changes)) == start + 2 * rounds
        assert session.scalar(select(MailingList.message_count)) == 1 + rounds


def test_each_takedown_hide_and_restore_moves_the_change_counter_by_exactly_one(
    site: Site,
) -> None:
    """The counter counts changes, not writes: one step per moderator action that changes what
    the archive shows (a hide or restore that finds nothing to do is none), whatever the post was.
    """
    with transaction(site.db) as session:
        mlist = lists.create(session, "dev", policy="members")
        lists.subscribe(session, mlist, "alice@example.org")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    a, b, c, d = (
        _post(site, f"Post {n}", f"{n}@x", t0 + timedelta(hours=i)) for i, n in enumerate("abcd")
    )
    held = _archive(site, make_mail("Stranger", sender="Bob <bob@example.org>", msgid="h@x"))
    held_pk = held.message_pk
    assert held.reason == "held for moderation" and held_pk

    def changes() -> int:
        with site.db() as session:
            return lists.require(session, "dev").changes

    def take_down(pk: int, purge: bool = False) -> None:
        with transaction(site.db) as session:
            remove(session, [session.get_one(Message, pk)], "spam", MOD, purge=purge)

    def hide_then_take_down(pk: int) -> None:
        _hide(site, pk)
        take_down(pk)

    steps = [
        ("hide a visible post", lambda: _hide(site, a), 1),
        ("hide it again", lambda: _hide(site, a), 0),
        ("restore it", lambda: _hide(site, restore=(a,)), 1),
        ("restore a visible post", lambda: _hide(site, restore=(a,)), 0),
        ("take down a visible post", lambda: take_down(b), 1),
        ("take it down again (a new reason)", lambda: take_down(b), 1),
        ("hide a removed post", lambda: _hide(site, b), 0),
        ("hide a post, then take it down", lambda: hide_then_take_down(c), 2),
        ("take down a held post", lambda: take_down(held_pk), 1),
        ("purge a visible post", lambda: take_down(d, purge=True), 1),
    ]
    for what, step, moves in steps:
        before = changes()
        step()
        assert changes() - before == moves, what
    assert _counts(site)[:2] == (1, 1)  # a is the one visible post left
