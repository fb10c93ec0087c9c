"""The same form sent twice at once on PostgreSQL (a double click on a slow page, two tabs): a
vote, a report, a ban, an edit. Each is one row per (post or list, address) or one new version;
the second request must answer as the first does, never a 500 or a second row.

The race is made certain rather than hoped for: another transaction writes the same row and
holds it uncommitted; the request reads no row, writes its own and waits on the unique index;
the other transaction then commits. That is exactly what the first of two clicks does to the
second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, approvals, lists, moderation, removal, reports, subscriptions
from listgate.db import transaction
from listgate.dispatch import FANOUT
from listgate.models import (
    Ban,
    Message,
    MessageEdit,
    OutboxEntry,
    Person,
    Report,
    Subscription,
    Thread,
    Vote,
)
from listgate.states import ListPolicy, ReportState, SubscriptionState
from tests.support.config import search
from tests.support.factories import make_mail, post
from tests.support.web import session_for

pytestmark = pytest.mark.integration
T = TypeVar("T")


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        )


def _while_another_click_writes(
    db: sessionmaker[Session], first: object, second: Callable[[], T]
) -> T:
    """second() run while another transaction holds `first` (the same row, or what a function of
    the session writes) uncommitted; that transaction commits once second() waits for it."""
    engine = db.kw["bind"]
    assert isinstance(engine, Engine)
    with Session(engine) as other:
        if callable(first):
            first(other)
        else:
            other.add(first)
        other.flush()  # written, not committed: the first click's transaction
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(second)
            deadline = time.monotonic() + 30
            while not _waiting_on_a_lock(engine) and not answer.done():
                assert time.monotonic() < deadline, "the second click never waited for the first"
                time.sleep(0.05)
            other.commit()
            return answer.result(timeout=60)


@pytest.fixture
def pg_site(
    pg_web: tuple[Flask, sessionmaker[Session]],
) -> tuple[Flask, sessionmaker[Session]]:
    with transaction(pg_web[1]) as session:
        lists.create(session, "dev", moderators="mod@example.org")
    return pg_web


def test_a_vote_sent_twice_at_once_is_one_vote_the_latest(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_site
    res = post(db, make_mail("Vote", msgid="v@x"))
    client = app.test_client()
    token = session_for(client, "bob@example.org")
    answer = _while_another_click_writes(
        db,
        Vote(message_pk=res.message_pk, address="bob@example.org", valuable=True),
        lambda: client.post(
            f"/messages/{res.message_pk}/vote", data={"csrf_token": token, "valuable": "no"}
        ),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    with db() as session:
        votes = session.execute(select(Vote.address, Vote.valuable)).all()
    assert votes == [("bob@example.org", False)]
    page = client.get(f"/threads/{res.thread_id}").get_data(as_text=True)
    assert "0 out of 1 found this valuable" in page


def test_a_report_sent_twice_at_once_is_one_report(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_site
    res = post(db, make_mail("Spam", msgid="s@x"))
    with db() as session:
        list_id = lists.require(session, "dev").id
    client = app.test_client()
    token = session_for(client, "bob@example.org")
    answer = _while_another_click_writes(
        db,
        Report(
            message_pk=res.message_pk,
            list_id=list_id,
            address="bob@example.org",
            reason="spam",
            status=ReportState.OPEN,
        ),
        lambda: client.post(
            f"/messages/{res.message_pk}/report", data={"csrf_token": token, "reason": "spam!"}
        ),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    with db() as session:
        reports = session.execute(select(Report.address, Report.status)).all()
    assert reports == [("bob@example.org", ReportState.OPEN)]


def test_a_ban_sent_twice_at_once_is_one_ban(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_site
    with db() as session:
        list_id = lists.require(session, "dev").id
    client = app.test_client()
    token = session_for(client, "mod@example.org")
    answer = _while_another_click_writes(
        db,
        Ban(list_id=list_id, address="troll@example.org", reason="", banned_by="mod@example.org"),
        lambda: client.post(
            f"/moderation/lists/{list_id}/bans",
            data={"csrf_token": token, "address": "troll@example.org", "reason": "trolling"},
        ),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    with db() as session:
        bans = session.execute(select(Ban.address)).all()
    assert bans == [("troll@example.org",)]


def test_an_edit_saved_twice_at_once_is_one_new_version(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_site
    res = post(
        db,
        make_mail(
            "Meeting",
            msgid="e@x",
            sender="ann@example.org",
            body="Meet at 10.\n",
            date=datetime.now(UTC),
        ),
        origin="web",
    )
    pk = res.message_pk
    client = app.test_client()
    token = session_for(client, "ann@example.org")

    def first_click(session: Session) -> None:  # what the edit view writes for "Meet at 11."
        msg = session.get_one(Message, pk)
        session.add(
            MessageEdit(message_pk=pk, version=1, body_text=msg.body_text, created_at=msg.date)
        )
        session.add(MessageEdit(message_pk=pk, version=2, body_text="Meet at 11.\n"))
        msg.body_text, msg.edited_at = "Meet at 11.\n", datetime.now(UTC)

    answer = _while_another_click_writes(
        db,
        first_click,
        lambda: client.post(
            f"/messages/{pk}/edit", data={"csrf_token": token, "body": "Meet at 11.\n"}
        ),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    with db() as session:
        versions = session.execute(
            select(MessageEdit.version, MessageEdit.body_text).order_by(MessageEdit.id)
        ).all()
    assert versions == [(1, "Meet at 10.\n"), (2, "Meet at 11.\n")]


def _counts(db: sessionmaker[Session], thread_id: int | None) -> tuple[int, int, int]:
    """The list's and the thread's post counts, and the fan-outs queued."""
    with db() as session:
        mlist = lists.require(session, "dev")
        thread = session.get_one(Thread, thread_id)
        fanouts = session.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.kind == FANOUT)
        )
        return mlist.message_count, thread.message_count, fanouts or 0


def test_a_held_post_approved_twice_at_once_is_published_once(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_site
    with transaction(db) as session:
        lists.require(session, "dev").policy = ListPolicy.MODERATED
    held = post(db, make_mail("Please", msgid="h@x", sender="new@example.org"))
    assert held.status == "held"
    client = app.test_client()
    token = session_for(client, "mod@example.org")

    def first_click(session: Session) -> None:  # another moderator's approval, the same moment
        msg = session.get_one(Message, held.message_pk)
        moderation.approve(session, lists.require(session, "dev"), msg, "other@example.org")

    answer = _while_another_click_writes(
        db,
        first_click,
        lambda: client.post(
            f"/moderation/messages/{held.message_pk}/approve", data={"csrf_token": token}
        ),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    assert _counts(db, held.thread_id) == (1, 1, 1)


def test_the_approve_and_reject_addresses_answered_at_once_decide_once(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    """Two moderators answer the held-post mail at the same moment, one approving, one
    rejecting: the first decides, the second is told it was dealt with."""
    _app, db = pg_site
    with transaction(db) as session:
        lists.require(session, "dev").policy = ListPolicy.MODERATED
    held = post(db, make_mail("Please", msgid="h@x", sender="new@example.org"))
    secret = "test-secret-key-0123456789"

    def first_click(session: Session) -> None:
        msg = session.get_one(Message, held.message_pk)
        code = moderation.code(secret, moderation.APPROVE, msg)
        mlist = lists.require(session, "dev")
        moderation.by_mail(session, secret, mlist, moderation.APPROVE, code, "a@example.org", "")

    def reject() -> str:
        try:
            with transaction(db) as session:
                msg = session.get_one(Message, held.message_pk)
                code = moderation.code(secret, moderation.REJECT, msg)
                mlist = lists.require(session, "dev")
                moderation.by_mail(
                    session, secret, mlist, moderation.REJECT, code, "b@example.org", "reject: no"
                )
        except moderation.ModerationError as exc:
            return str(exc)
        return "rejected"

    said = _while_another_click_writes(db, first_click, reject)
    assert said == 'the post "Please" was already dealt with (it is visible now)'
    with db() as session:
        assert session.get_one(Message, held.message_pk).status == "visible"
    assert _counts(db, held.thread_id) == (1, 1, 1)


def _notices(db: sessionmaker[Session], to: str) -> list[str]:
    with db() as session:
        payloads = [json.loads(p) for p in session.scalars(select(OutboxEntry.payload))]
    return sorted(p["template"] for p in payloads if p.get("to") == to and "template" in p)


@pytest.mark.parametrize("second", ["approve", "refuse"])
def test_a_request_decided_by_two_moderators_at_once_is_decided_once(
    pg_site: tuple[Flask, sessionmaker[Session]], second: str
) -> None:
    """One moderator approves a request to join a private list while another approves or refuses
    it: the address gets one answer (one welcome), not a welcome and then a refusal."""
    app, db = pg_site
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        mlist.private = True
        sub_id = subscriptions.start(session, mlist, "pat@example.org").id
    client = app.test_client()
    token = session_for(client, "mod@example.org")

    def first_click(session: Session) -> None:
        approvals.approve(session, session.get_one(Subscription, sub_id), "other@example.org")

    answer = _while_another_click_writes(
        db,
        first_click,
        lambda: client.post(
            f"/moderation/subscriptions/{sub_id}/{second}",
            data={"csrf_token": token, "reason": "no"},
        ),
    )
    assert answer.status_code in (303, 409), answer.get_data(as_text=True)[:300]
    with db() as session:
        assert session.get_one(Subscription, sub_id).status == SubscriptionState.ACTIVE
    assert _notices(db, "pat@example.org") == ["welcome"]


def test_a_post_removed_twice_at_once_is_removed_once(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, db = pg_site
    post(db, make_mail("Keep", msgid="k@x"))
    res = post(db, make_mail("Spam", msgid="s@x"))
    client = app.test_client()
    token = session_for(client, "mod@example.org")

    def first_click(session: Session) -> None:  # another moderator removing it, the same moment
        removal.remove(session, [session.get_one(Message, res.message_pk)], "spam", "o@example.org")

    answer = _while_another_click_writes(
        db,
        first_click,
        lambda: client.post(
            f"/moderation/messages/{res.message_pk}/remove",
            data={"csrf_token": token, "reason": "spam!"},
        ),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    with db() as session:
        assert lists.require(session, "dev").message_count == 1  # "Keep" is still there
        assert session.get_one(Thread, res.thread_id).message_count == 0


def test_two_reports_at_once_that_reach_the_threshold_hide_the_post_once(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    """Two readers report a post at the same moment, each the report that reaches the threshold
    (3) as they see it: the post is hidden, and leaves the counts once."""
    app, db = pg_site
    post(db, make_mail("Keep", msgid="k@x"))
    res = post(db, make_mail("Spam", msgid="s@x"))
    with db() as session:
        list_id = lists.require(session, "dev").id
    with transaction(db) as session:
        for who in ("r1@example.org", "r2@example.org"):
            session.add(Report(message_pk=res.message_pk, list_id=list_id, address=who))
    client = app.test_client()
    token = session_for(client, "bob@example.org")

    def first_click(session: Session) -> None:  # the same view's writes, for another reader
        session.add(Report(message_pk=res.message_pk, list_id=list_id, address="r3@example.org"))
        session.flush()
        reports.hide(session, session.get_one(Message, res.message_pk))

    answer = _while_another_click_writes(
        db,
        first_click,
        lambda: client.post(
            f"/messages/{res.message_pk}/report", data={"csrf_token": token, "reason": "spam"}
        ),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    with db() as session:
        assert session.get_one(Message, res.message_pk).status == "hidden"
        assert lists.require(session, "dev").message_count == 1  # "Keep" is still there


def test_roles_changed_by_two_owners_at_once_are_both_kept(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    """One owner removes a moderator while another adds one, at the same moment: the removed
    moderator may moderate no more, and the added one may."""
    app, db = pg_site
    with transaction(db) as session:
        lists.create(session, "club", owners="own@example.org", moderators="old@example.org")
    client = app.test_client()
    token = session_for(client, "own@example.org")

    def first_click(session: Session) -> None:  # the other owner's change
        mlist = lists.require(session, "club")
        administration.change_role(
            session, mlist, "add", "moderator", "new@example.org", "own2@example.org"
        )

    answer = _while_another_click_writes(
        db,
        first_click,
        lambda: client.post(
            "/lists/club/roles",
            data={
                "csrf_token": token,
                "role": "moderator",
                "action": "remove",
                "address": "old@example.org",
            },
        ),
    )
    assert answer.status_code == 303
    with db() as session:
        assert lists.require(session, "club").moderators == "new@example.org"


def test_roles_changed_by_an_owner_on_the_command_line_while_another_changes_them_are_both_kept(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    """The same on the command line (`listgate moderators remove` runs administration.change_role
    in its own transaction): the moderator another owner added at that moment stays."""
    _, db = pg_site
    with transaction(db) as session:
        lists.create(session, "club", owners="own@example.org", moderators="old@example.org")

    def first_click(session: Session) -> None:  # the other owner's change
        mlist = lists.require(session, "club")
        administration.change_role(
            session, mlist, "add", "moderator", "new@example.org", "own2@example.org"
        )

    def command_line() -> bool:
        with transaction(db) as session:
            mlist = lists.require(session, "club")
            return administration.change_role(
                session, mlist, "remove", "moderator", "old@example.org", "own@example.org"
            )

    assert _while_another_click_writes(db, first_click, command_line) is True
    with db() as session:
        assert lists.require(session, "club").moderators == "new@example.org"


def test_secret_feed_links_made_on_two_pages_at_once_are_one_link_that_works(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    """A member's secret feed key is made when a page first shows it; two pages shown at once
    (two tabs) show the same key, and the link works."""
    app, db = pg_site
    with transaction(db) as session:
        hush = lists.create(session, "hush", private=True, moderators="mod@example.org")
        subscriptions.start(session, hush, "bob@example.org", approved_by="mod@example.org")
    client = app.test_client()
    session_for(client, "bob@example.org")
    first_key = "k" * 32

    def first_page(session: Session) -> None:  # the other tab made the key first
        session.add(Person(address="bob@example.org", feed_token=first_key))

    page = _while_another_click_writes(db, first_page, lambda: client.get("/me/subscriptions"))
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    link = search(r'value="(http[^"]+/feeds/[^"]+)"', page.get_data(as_text=True))
    assert f"/feeds/{first_key}/lists/hush.atom" in link
    path = "/" + link.split("://", 1)[1].partition("/")[2]
    assert app.test_client().get(path).status_code == 200
    # a member with no row yet: the key is made, and works
    with transaction(db) as session:
        subscriptions.start(session, hush, "ann@example.org", approved_by="mod@example.org")
    session_for(client, "ann@example.org")
    page = client.get("/me/subscriptions")
    link = search(r'value="(http[^"]+/feeds/[^"]+)"', page.get_data(as_text=True))
    assert app.test_client().get("/" + link.split("://", 1)[1].partition("/")[2]).status_code == 200


def test_a_setting_saved_twice_at_once_by_a_new_reader_is_saved(
    pg_site: tuple[Flask, sessionmaker[Session]],
) -> None:
    """Save pressed twice on the first visit to one's settings: the second click sees the row the
    first made, and answers as it does."""
    app, db = pg_site
    client = app.test_client()
    token = session_for(client, "bob@example.org")
    answer = _while_another_click_writes(
        db,
        Person(address="bob@example.org", auto_follow=False),
        lambda: client.post("/me/settings", data={"csrf_token": token, "auto_follow": "no"}),
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    with db() as session:
        assert session.get_one(Person, "bob@example.org").auto_follow is False
