"""Thread roots over time, on SQLite and PostgreSQL: merges of threads built from real mail arriving
out of order, with held posts among them; after every step each live thread starts at a visible
post of its own, a merged-away thread names no root, and the list counts its live threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, moderation, reports, threads
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import HELD_FOR_MODERATION, STORED, ingest
from listgate.mail.parser import parse
from listgate.models import Message, Thread
from listgate.schema import upgrade
from tests.support import roots
from tests.support.config import make_settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated archive on each database."""
    if request.param == "sqlite":
        engine = make_engine(make_settings(tmp_path))
        upgrade(engine)
    else:
        engine = make_engine(request.getfixturevalue("pg_settings"))
    yield session_factory(writer(engine))
    engine.dispose()


def mail(mid: str, subject: str, hours: int, frm: str, refs: str = "") -> bytes:
    date = (T0 + timedelta(hours=hours)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    head = f"From: {frm}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{mid}>\r\n"
    return (head + (f"References: {refs}\r\n" if refs else "") + "\r\nbody\r\n").encode()


def post(db: sessionmaker[Session], name: str, raw: bytes, origin: str = "smtp") -> str:
    with transaction(db) as s:
        return ingest(
            s, parse(raw), lists.require(s, name), domain="lists.test", origin=origin
        ).status


def check(db: sessionmaker[Session], name: str) -> None:
    with db() as s:
        assert not (broken := roots.problems(s, lists.require(s, name).id)), broken


def thread_of(db: sessionmaker[Session], mid: str) -> tuple[Thread, int]:
    """The live thread of a message, and the message's pk."""
    with db() as s:
        msg = s.scalars(select(Message).where(Message.message_id == mid)).one()
        live = threads.resolve(s, msg.thread_id)
        assert live is not None
        return live, msg.id


@pytest.mark.parametrize("reply_from", ["Mod <mod@example.org>", "Eve <eve@example.org>"])
def test_a_merge_with_an_older_thread_of_held_posts_keeps_the_visible_start(
    db: sessionmaker[Session], reply_from: str
) -> None:
    """An older thread holding only a held post merges into a thread with a published start (by a
    published reply or a held one): the thread keeps its start, subject and starter (the held
    post's subject is not shown); once the held post is approved it starts the thread."""
    with transaction(db) as s:
        lists.create(s, "club", policy="moderated", moderators="mod@example.org")
    assert post(db, "club", mail("h@x.test", "Secret plan", 0, "Eve <eve@example.org>")) == (
        HELD_FOR_MODERATION
    )
    assert post(db, "club", mail("v@x.test", "Public", 1, "Mod <mod@example.org>")) == STORED
    post(db, "club", mail("r@x.test", "Re: Public", 2, reply_from, refs="<h@x.test> <v@x.test>"))
    thread, v_pk = thread_of(db, "v@x.test")
    assert (thread.subject, thread.starter_name, thread.root_message_pk) == ("Public", "Mod", v_pk)
    assert thread_of(db, "h@x.test")[0].id == thread.id
    check(db, "club")
    with transaction(db) as s:
        held = s.scalars(select(Message).where(Message.message_id == "h@x.test")).one()
        moderation.approve(s, lists.require(s, "club"), held, "mod@example.org")
    thread, h_pk = thread_of(db, "h@x.test")
    assert (thread.subject, thread.starter_name, thread.root_message_pk) == (
        "Secret plan",
        "Eve",
        h_pk,
    )
    check(db, "club")
    with transaction(db) as s:  # hidden after reports: its tombstone still starts the thread
        reports.hide(s, s.get_one(Message, h_pk))
    assert thread_of(db, "v@x.test")[0].root_message_pk == h_pk
    check(db, "club")


def test_threads_merged_by_replies_arriving_before_their_start_name_no_root(
    db: sessionmaker[Session],
) -> None:
    """Replies to a start not archived yet open a thread each; a reply naming two of them merges
    them, another merges the third; the start arrives last. After each mail: the invariants."""
    with transaction(db) as s:
        lists.create(s, "dev")
    ann = "Ann <ann@example.org>"
    steps = [
        mail("b@x.test", "Re: Plan", 3, ann, refs="<a@x.test> <hole1@x.test>"),
        mail("c@x.test", "Re: Plan", 1, ann, refs="<hole2@x.test>"),
        mail("d@x.test", "Re: Plan", 2, ann, refs="<hole3@x.test>"),
        mail("e@x.test", "Re: Plan", 4, ann, refs="<hole1@x.test> <hole2@x.test>"),
        mail("f@x.test", "Re: Plan", 5, ann, refs="<hole3@x.test> <b@x.test>"),
        mail("a@x.test", "Plan", 0, ann),
    ]
    for raw in steps:
        assert post(db, "dev", raw, origin="import") == STORED
        check(db, "dev")
    thread, a_pk = thread_of(db, "a@x.test")
    assert (thread.message_count, thread.root_message_pk, thread.subject) == (6, a_pk, "Plan")
    with db() as s:
        gone = s.scalars(select(Thread).where(Thread.merged_into_id.is_not(None))).all()
        assert len(gone) == 2 and {t.root_message_pk for t in gone} == {None}


def test_a_held_post_merged_into_a_thread_does_not_date_its_last_activity(
    db: sessionmaker[Session],
) -> None:
    """A held post dated a month after every published one merges in: the
    thread's last activity (the list's order and "last post") stays its last published post's."""
    with transaction(db) as s:
        lists.create(s, "club", policy="moderated", moderators="mod@example.org")
    post(db, "club", mail("h@x.test", "Buy now", 24 * 30, "Eve <eve@example.org>"))
    post(db, "club", mail("v@x.test", "Public", 1, "Mod <mod@example.org>"))
    post(
        db,
        "club",
        mail("r@x.test", "Re: Public", 2, "Mod <mod@example.org>", refs="<h@x.test> <v@x.test>"),
    )
    thread, _ = thread_of(db, "v@x.test")
    assert thread_of(db, "h@x.test")[0].id == thread.id
    assert thread.last_activity == T0 + timedelta(hours=2)
    check(db, "club")


@pytest.mark.parametrize("held_hours", [24 * 30, -24 * 30])
def test_a_thread_started_by_a_held_post_is_dated_by_its_published_posts(
    db: sessionmaker[Session], held_hours: int
) -> None:
    """A stranger's held post starts a thread (dated a month after, or a month before); the
    moderator's published answer is its first post. The thread's start and last activity (the
    list's order, its "started" and "last post") are the published post's, never the held one's;
    they follow the held post only once it is approved."""
    with transaction(db) as s:
        lists.create(s, "club", policy="moderated", moderators="mod@example.org")
    held = mail("h@x.test", "Question", held_hours, "Eve <eve@example.org>")
    assert post(db, "club", held) == HELD_FOR_MODERATION
    answer = mail("a@x.test", "Re: Question", 0, "Mod <mod@example.org>", refs="<h@x.test>")
    assert post(db, "club", answer) == STORED
    thread, answer_pk = thread_of(db, "a@x.test")
    assert (thread.created_at, thread.last_activity) == (T0, T0)
    assert (thread.root_message_pk, thread.message_count) == (answer_pk, 1)
    check(db, "club")
    with transaction(db) as s:  # approved: now it is the start, and its date counts
        held_msg = s.scalars(select(Message).where(Message.message_id == "h@x.test")).one()
        moderation.approve(s, lists.require(s, "club"), held_msg, "mod@example.org")
    thread, _ = thread_of(db, "a@x.test")
    held_at = T0 + timedelta(hours=held_hours)
    assert (thread.created_at, thread.last_activity) == (min(T0, held_at), max(T0, held_at))
    assert thread.message_count == 2
    check(db, "club")


def test_a_hidden_post_moved_to_a_thread_of_held_posts_gets_its_root_back_when_restored(
    db: sessionmaker[Session],
) -> None:
    """A reply joined by subject is hidden after reports; a stranger's held post nearer to it by
    date takes it into the held post's thread (which then shows nothing). Restoring the reply
    makes that thread one of the list's: it starts at the reply, dated by the reply alone (the
    held post's date is nobody's business); hiding it again and approving the held post leaves
    the held post as the start."""
    with transaction(db) as s:
        lists.create(s, "club", policy="moderated", moderators="mod@example.org")
    mod = "Mod <mod@example.org>"
    assert post(db, "club", mail("a@x.test", "Plan", 0, mod)) == STORED
    assert post(db, "club", mail("b@x.test", "Re: Plan", 5, mod)) == STORED
    thread, b_pk = thread_of(db, "b@x.test")
    assert thread.id == thread_of(db, "a@x.test")[0].id
    with transaction(db) as s:
        reports.hide(s, s.get_one(Message, b_pk))
    check(db, "club")
    held = mail("c@x.test", "Plan", 3, "Eve <eve@example.org>")
    assert post(db, "club", held) == HELD_FOR_MODERATION
    moved, c_pk = thread_of(db, "c@x.test")
    assert thread_of(db, "b@x.test")[0].id == moved.id != thread_of(db, "a@x.test")[0].id
    check(db, "club")
    with transaction(db) as s:
        reports.restore(s, s.get_one(Message, b_pk))
    moved, _ = thread_of(db, "b@x.test")
    assert (moved.root_message_pk, moved.subject, moved.message_count) == (b_pk, "Re: Plan", 1)
    at_b = T0 + timedelta(hours=5)
    assert (moved.created_at, moved.last_activity) == (at_b, at_b)
    check(db, "club")
    with transaction(db) as s:
        reports.hide(s, s.get_one(Message, b_pk))
        moderation.approve(s, lists.require(s, "club"), s.get_one(Message, c_pk), "mod@x")
    moved, _ = thread_of(db, "c@x.test")
    at_c = T0 + timedelta(hours=3)
    assert (moved.root_message_pk, moved.subject, moved.message_count) == (c_pk, "Plan", 1)
    assert (moved.created_at, moved.last_activity) == (at_c, at_c)
    check(db, "club")


def test_hiding_the_latest_posts_takes_their_dates_off_the_thread_and_the_list(
    db: sessionmaker[Session],
) -> None:
    """The list's and the thread's last activity ("last post", the home page's "last activity")
    follow the posts still shown when the latest ones are hidden after reports, and come back
    with them; a list showing nothing shows no last activity."""
    with transaction(db) as s:
        lists.create(s, "dev")
    ann = "Ann <ann@example.org>"
    post(db, "dev", mail("a@x.test", "Plan", 0, ann))
    post(db, "dev", mail("b@x.test", "Re: Plan", 5, ann, refs="<a@x.test>"))
    post(db, "dev", mail("c@x.test", "Other", 3, ann))
    pks = {mid: thread_of(db, mid)[1] for mid in ("a@x.test", "b@x.test", "c@x.test")}

    def hide(mid: str, back: bool = False) -> tuple[datetime | None, datetime]:
        with transaction(db) as s:
            (reports.restore if back else reports.hide)(s, s.get_one(Message, pks[mid]))
        check(db, "dev")
        with db() as s:
            listed = lists.require(s, "dev").last_activity
        return listed, thread_of(db, "a@x.test")[0].last_activity

    at = {h: T0 + timedelta(hours=h) for h in (0, 3, 5)}
    assert hide("b@x.test") == (at[3], at[0])
    assert hide("c@x.test") == (at[0], at[0])
    assert hide("a@x.test") == (None, at[0])  # nothing shown: its thread is no thread of the list
    assert hide("b@x.test", back=True) == (at[5], at[5])
