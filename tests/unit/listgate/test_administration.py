"""The owner's commands and the moderation-by-mail codes: attacks and wrong input first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import cli, lists, moderation, subscriptions
from listgate.addresses import parse_recipient
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import AuditEntry, Message, NotPosted, RawMessage, Subscription
from listgate.states import PostState
from listgate.subscriptions import DIGEST, MAIL, SubscriptionError, change
from tests.support.factories import MakeList, subscription_of

SECRET = "test-secret-key-0123456789"


def mail(msgid: str, sender: str = "ann@example.org", body: str = "Hello.") -> bytes:
    return (
        f"From: {sender}\r\nTo: club@lists.test\r\nSubject: Post {msgid}\r\n"
        f"Message-ID: <{msgid}>\r\n"
        f"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


def held_post(db: sessionmaker[Session], name: str = "club", msgid: str = "h1@x") -> Message:
    with transaction(db) as session:
        result = ingest(
            session, parse(mail(msgid)), lists.require(session, name), domain="lists.test"
        )
        assert result.status == "held"
        return session.get_one(Message, result.message_pk)


@pytest.fixture
def club(make_list: MakeList) -> None:
    make_list("club", policy="moderated", moderators="mod@example.org")
    make_list("other", policy="moderated", moderators="mod@example.org")


def act(db: sessionmaker[Session], name: str, action: str, code: str, body: str = "") -> list:
    with transaction(db) as session:
        return moderation.by_mail(
            session, SECRET, lists.require(session, name), action, code, "mod@example.org", body
        )


def status(db: sessionmaker[Session], pk: int) -> str:
    with db() as session:
        return session.get_one(Message, pk).status


def test_forged_swapped_and_foreign_codes_are_refused(
    db: sessionmaker[Session], club: None
) -> None:
    msg = held_post(db)
    approve = moderation.code(SECRET, "approve", msg)
    attacks = [
        ("club", "approve", f"{msg.id:x}.aaaaaaaaaaaa"),  # guessed
        ("club", "reject", approve),  # the approve code at the reject address
        ("other", "approve", approve),  # another list's address
        ("club", "approve", moderation.code("another-secret-0123456789", "approve", msg)),
        ("club", "approve", "zz.notacode"),
        ("club", "approve", "f" * 20 + ".aaaaaaaaaaaa"),  # no id can be so big (SQLite overflowed)
        ("club", "approve", f"{'f' * 8}.aaaaaaaaaaaa"),  # past PostgreSQL's ids
    ]
    for name, action, code in attacks:
        with pytest.raises(moderation.ModerationError, match="not valid"):
            act(db, name, action, code, "reject: x")
    assert status(db, msg.id) == PostState.HELD


def test_a_code_works_once(db: sessionmaker[Session], club: None) -> None:
    msg = held_post(db)
    entries = act(db, "club", "approve", moderation.code(SECRET, "approve", msg))
    assert [e.kind for e in entries] == ["listgate.fanout"] and status(
        db, msg.id
    ) == PostState.VISIBLE
    for action in ("approve", "reject"):
        with pytest.raises(moderation.ModerationError, match="already dealt with"):
            act(db, "club", action, moderation.code(SECRET, action, msg), "reject: too late")
    assert status(db, msg.id) == PostState.VISIBLE


def test_reject_needs_a_reject_line_and_mails_the_reason(
    db: sessionmaker[Session], club: None
) -> None:
    msg = held_post(db)
    code = moderation.code(SECRET, "reject", msg)
    with pytest.raises(moderation.ModerationError, match="reject: REASON"):
        act(db, "club", "reject", code, "What is this about?\n> quoted")
    assert status(db, msg.id) == PostState.HELD
    (notice,) = act(
        db, "club", "reject", code, "On Wed, Mod wrote:\n> held\n\nReject: advertising\n"
    )
    assert '"reason": "advertising"' in notice.payload and status(db, msg.id) == PostState.REJECTED
    with db() as session:
        assert [e.action for e in session.scalars(select(AuditEntry))] == ["reject message"]


def test_a_reject_reason_by_mail_has_the_web_s_limit(db: sessionmaker[Session], club: None) -> None:
    msg = held_post(db)
    code = moderation.code(SECRET, "reject", msg)
    too_long = "n" * 1997 + "ü€😀ß"  # 2,001 characters
    with pytest.raises(moderation.ModerationError) as refused:
        act(db, "club", "reject", code, f"reject: {too_long}\n\n> the post")
    said = str(refused.value)
    assert said.startswith("the reason is too long: at most 2,000 characters (this one has 2,001)")
    assert "still held" in str(refused.value)
    assert status(db, msg.id) == PostState.HELD
    with db() as session:
        assert session.scalars(select(AuditEntry)).all() == []
    (notice,) = act(db, "club", "reject", code, f"reject: {too_long[:-1]}\n")
    assert json.loads(notice.payload)["reason"] == too_long[:-1]
    assert status(db, msg.id) == PostState.REJECTED


def test_reject_reason_lines() -> None:
    assert moderation.reject_reason("reject: spam\n\n> the post") == "spam"
    assert moderation.reject_reason("> quoted\nREJECT") == "rejected by the moderators"
    assert moderation.reject_reason("rejection is harsh") is None
    assert moderation.reject_reason("") is None


def test_moderation_goes_to_moderators_then_owners_then_admins(make_list: MakeList) -> None:
    both = make_list("both", moderators="m@x.org", owners="o@x.org")
    owned = make_list("owned", owners="o@x.org")
    bare = make_list("bare")
    admins = ("root@x.org",)
    assert moderation.recipients(both, admins) == ["m@x.org"]
    assert moderation.recipients(owned, admins) == ["o@x.org"]
    assert moderation.recipients(bare, admins) == ["root@x.org"]
    assert moderation.recipients(bare, ()) == []


def test_command_addresses_are_parsed_and_stay_short() -> None:
    approve = parse_recipient("club+approve-1f.abcdefghijkl@lists.test", "lists.test")
    assert approve is not None and approve.command == "approve"
    digest = parse_recipient("club+digest-weekly@lists.test", "lists.test")
    assert digest is not None and digest.arg == "weekly"
    assert parse_recipient("club+digest-hourly@lists.test", "lists.test") is None
    assert parse_recipient("club+approve@lists.test", "lists.test") is None
    longest = f"{'n' * 32}+approve-{2**31:x}.{'a' * 12}"
    assert len(longest) < 64


def test_digest_by_mail_goes_through_change_and_refuses_strangers(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("town")
    with transaction(db) as session:
        mlist = lists.require(session, "town")
        first = lists.subscribe(session, mlist, "r@example.org")
        with pytest.raises(SubscriptionError, match="not subscribed"):
            change(session, mlist, "stranger@example.org", DIGEST, channel=MAIL, frequency="weekly")
        with pytest.raises(SubscriptionError, match="choose daily, weekly, off"):
            change(session, mlist, "r@example.org", DIGEST, channel=MAIL, frequency="hourly")
        weekly = change(session, mlist, "r@example.org", DIGEST, channel=MAIL, frequency="weekly")
        assert (
            weekly.message == "You now get a weekly digest from town." and len(weekly.outbox) == 1
        )
        again = subscription_of(
            change(session, mlist, "r@example.org", DIGEST, channel=MAIL, frequency="daily")
        )
        off = subscription_of(
            change(session, mlist, "r@example.org", DIGEST, channel=MAIL, frequency="off")
        )
        assert weekly.subscription is again and (
            again.kind,
            again.digest_frequency,
            again.status,
        ) == ("digest", "daily", "ended")
        assert off is first and (off.kind, off.status) == ("list", "active")
        rows = session.scalars(
            select(Subscription).where(Subscription.address.like("%@example.org"))
        ).all()
        assert sorted((r.kind, r.status) for r in rows) == [("digest", "ended"), ("list", "active")]
        assert not any(r.address == "stranger@example.org" for r in rows)


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": SECRET,
        "LISTGATE_DOMAIN": "lists.test",
    }
    result = CliRunner().invoke(cli.main, list(args), env=env)
    return result.exit_code, result.output


def test_cli_edit_delete_and_roles_name_the_problem(tmp_path: Path) -> None:
    assert run(tmp_path, "lists", "create", "club")[0] == 0
    assert (
        run(tmp_path, "lists", "edit", "club", "--reply-to", "list")[1]
        == "club: reply_to: 'none' -> 'list'\n"
    )
    assert (
        run(tmp_path, "lists", "edit", "club", "--reply-to", "list")[1] == "club: nothing changed\n"
    )
    code, out = run(tmp_path, "lists", "edit", "nosuch", "--title", "x")
    assert code == 1 and "no list named 'nosuch'" in out
    code, out = run(tmp_path, "owners", "add", "club", "not-an-address")
    assert code == 1 and "is not an email address" in out
    assert (
        "is now an owner of club" in run(tmp_path, "owners", "add", "club", "Owner@Example.org")[1]
    )
    assert run(tmp_path, "owners", "show", "club")[1] == "owner@example.org\n"
    code, out = run(tmp_path, "moderators", "remove", "club", "owner@example.org")
    assert code == 1 and "is not a moderator of club" in out
    assert (
        "is already an owner of club"
        in run(tmp_path, "owners", "add", "club", "owner@example.org")[1]
    )
    assert run(tmp_path, "owners", "remove", "club", "OWNER@example.org") == (
        0,
        "owner@example.org is no longer an owner of club\n",
    )
    assert run(tmp_path, "owners", "show", "club")[1] == "club has no owners\n"
    code, out = run(tmp_path, "owners", "remove", "club", "owner@example.org")
    assert code == 1 and "is not an owner of club" in out
    assert all(
        f"{word} " in run(tmp_path, "moderators", "--help")[1] for word in ("add", "remove", "show")
    )


def test_cli_delete_refuses_a_list_with_posts_unless_purge(
    tmp_path: Path, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    make_list("club")
    with transaction(db) as session:
        mlist = lists.require(session, "club")
        for n in range(2):
            ingest(session, parse(mail(f"p{n}@x")), mlist, domain="lists.test")
        lists.subscribe(session, mlist, "s@example.org")
        # An out-of-office answer kept in the not-posted
        # queue, and a subscriber who left after a post.
        auto = mail("ooo@x", sender="away@example.org").replace(
            b"\r\n\r\n", b"\r\nAuto-Submitted: auto-replied\r\n\r\n", 1
        )
        assert ingest(session, parse(auto), mlist, domain="lists.test").status == "dropped"
        subscriptions.change(session, mlist, "s@example.org", subscriptions.LEAVE, channel="admin")
    env = {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_SECRET_KEY": SECRET,
        "LISTGATE_DOMAIN": "lists.test",
    }
    result = CliRunner().invoke(cli.main, ["lists", "delete", "club"], env=env)
    assert (
        result.exit_code == 1 and "has 2 messages" in result.output and "--purge" in result.output
    )
    with db() as session:
        assert lists.get(session, "club") is not None
    result = CliRunner().invoke(cli.main, ["lists", "delete", "club", "--purge"], env=env)
    assert result.exit_code == 0, result.output
    # 3 subscriptions: s@ to the list, and the author following the two threads she started.
    assert (
        "deleted club: 2 messages, 2 threads, 3 subscriptions, 1 mail not posted" in result.output
    )
    with db() as session:
        assert lists.get(session, "club") is None
        assert session.scalar(select(func.count()).select_from(NotPosted)) == 0
        assert session.scalar(select(func.count()).select_from(RawMessage)) == 0
        assert session.scalar(select(func.count()).select_from(Message)) == 0
