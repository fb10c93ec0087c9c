"""The administrator's commands on people: subscribe,
unsubscribe (with history), requests, the not-posted queue.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, confirmations, lists, subscriptions
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Delivery, Message, NotPosted, OutboxEntry, Subscription
from listgate.states import SubscriptionState
from tests.support.commands import command_env, migrated_site, run
from tests.support.factories import subscription_of


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return command_env(tmp_path)


@pytest.fixture
def db(tmp_path: Path, env: dict[str, str]) -> sessionmaker[Session]:
    return migrated_site(tmp_path, env)[0]


def post(db: sessionmaker[Session], mid: str, list_name: str = "dev", extra: str = "") -> int:
    raw = (
        f"From: ann@example.org\r\nSubject: Topic {mid}\r\nMessage-ID: <{mid}>\r\n{extra}\r\n"
        "hello\r\n"
    ).encode()
    with transaction(db) as session:
        result = ingest(
            session,
            parse(raw),
            lists.require(session, list_name),
            domain="lists.test",
            envelope_from="ann@example.org",
        )
        return result.message_pk or 0


def test_unsubscribe_of_someone_who_was_mailed_keeps_the_history(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    assert run(env, "lists", "create", "dev").exit_code == 0
    assert run(env, "subscribe", "Bob@Example.org", "--list", "dev").exit_code == 0
    pk = post(db, "p1@x")
    with transaction(db) as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.address == "bob@example.org")
        ).one()
        session.add(
            Delivery(
                message_pk=pk,
                address=sub.address,
                subscription_id=sub.id,
                status="sent",
                attempts=1,
                last_error="",
            )
        )
    done = run(env, "unsubscribe", "bob@example.org", "--list", "dev")
    assert done.exit_code == 0 and done.output.strip() == "bob@example.org has left dev."
    again = run(env, "unsubscribe", "bob@example.org", "--list", "dev")
    assert again.exit_code == 0 and "is not subscribed" in again.output
    with db() as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.address == "bob@example.org")
        ).one()
        assert (sub.status, sub.end_reason) == ("ended", "left (admin)")
        assert session.scalar(select(Delivery.subscription_id)) == sub.id
        assert (
            session.scalars(
                select(OutboxEntry.kind).where(OutboxEntry.kind != "listgate.fanout")
            ).all()
            == []
        )


def test_a_member_leaving_one_thread_mutes_it(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    run(env, "lists", "create", "dev")
    run(env, "subscribe", "bob@example.org", "--list", "dev")
    pk = post(db, "p1@x")
    with db() as session:
        thread_id = session.get_one(Message, pk).thread_id
    done = run(env, "unsubscribe", "bob@example.org", "--list", "dev", "--thread", str(thread_id))
    assert done.exit_code == 0 and "no more mail from this thread" in done.output


def test_subscribe_to_a_thread_of_another_list_or_none_is_refused(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    run(env, "lists", "create", "dev")
    run(env, "lists", "create", "ops")
    pk = post(db, "o1@x", list_name="ops")
    with db() as session:
        ops_thread = session.get_one(Message, pk).thread_id
    for thread in (str(ops_thread), "999"):
        done = run(env, "subscribe", "bob@example.org", "--list", "dev", "--thread", thread)
        assert done.exit_code == 1 and f"there is no thread {thread} on the list dev" in done.output
    with db() as session:
        assert (
            session.scalars(
                select(Subscription).where(Subscription.address == "bob@example.org")
            ).all()
            == []
        )


@pytest.mark.parametrize("address", ["a\x0bb@example.org", "a\u2028b@example.org", "nobody"])
def test_bad_addresses_are_named(
    env: dict[str, str], db: sessionmaker[Session], address: str
) -> None:
    run(env, "lists", "create", "dev")
    done = run(env, "subscribe", address, "--list", "dev")
    assert (
        done.exit_code == 1
        and "is not an email address" in done.output
        and "Traceback" not in done.output
    )


def test_lists_show_counts_in_words(env: dict[str, str], db: sessionmaker[Session]) -> None:
    run(env, "lists", "create", "dev")
    post(db, "p1@x")
    assert (
        "1 thread" in run(env, "lists", "show").output
        and "1 message " in run(env, "lists", "show").output
    )
    post(db, "p2@x")
    shown = run(env, "lists", "show").output
    assert "2 threads" in shown and "2 messages" in shown


def test_requests_are_shown_approved_and_refused(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    run(env, "lists", "create", "club", "--private", "--moderators", "mod@example.org")
    with transaction(db) as session:
        club = lists.require(session, "club")
        for address in ("a@example.org", "b@example.org"):
            sub = subscription_of(
                confirmations.request(
                    session,
                    club,
                    address,
                    secret="test-secret-key-0123456789",
                    base_url="https://lists.test",
                    domain="lists.test",
                )
            )
            token = subscriptions.tokens.make(
                "test-secret-key-0123456789", "confirm", {"s": sub.id, "a": address}
            )
            confirmations.confirm_token(session, "test-secret-key-0123456789", token)
    shown = run(env, "requests", "show")
    assert "a@example.org" in shown.output and "2 requests waiting" in shown.output
    assert (
        "is now subscribed to club"
        in run(env, "requests", "approve", "a@example.org", "--list", "club").output
    )
    assert (
        "is refused"
        in run(
            env, "requests", "refuse", "b@example.org", "--list", "club", "--reason", "no"
        ).output
    )
    missing = run(env, "requests", "approve", "c@example.org", "--list", "club")
    assert missing.exit_code == 1 and "has no request waiting on club" in missing.output
    with db() as session:
        states = dict(session.execute(select(Subscription.address, Subscription.status)).all())
        notices = [json.loads(p)["template"] for p in session.scalars(select(OutboxEntry.payload))]
        audit = [
            (e.actor, e.action, e.detail)
            for e in administration.history(session, lists.require(session, "club"))
        ]
    assert states == {"a@example.org": "active", "b@example.org": "ended"}
    assert notices.count("welcome") == 1 and notices.count("refused") == 1
    assert audit[:2] == [
        ("admin", "refuse subscription", "b@example.org (list): no"),
        ("admin", "approve subscription", "a@example.org (list)"),
    ]


def test_an_invitation_mails_a_confirmation_approved_in_advance(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    run(env, "lists", "create", "club", "--private")
    done = run(env, "subscribe", "new@example.org", "--list", "club", "--invite")
    assert done.exit_code == 0 and "A confirmation mail was sent to new@example.org" in done.output
    with db() as session:
        sub = session.scalars(select(Subscription)).one()
    assert (sub.status, sub.approved_by) == ("pending", "admin")


def test_the_not_posted_queue_is_shown_and_released(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    run(env, "lists", "create", "dev")
    assert post(db, "auto@x", extra="Auto-Submitted: auto-replied\r\n") == 0
    shown = run(env, "not-posted", "show")
    assert "Auto-Submitted: auto-replied" in shown.output and "1 mail not posted" in shown.output
    with db() as session:
        entry_id = session.scalars(select(NotPosted.id)).one()
    released = run(env, "not-posted", "release", str(entry_id))
    assert released.exit_code == 0 and "released: stored" in released.output
    again = run(env, "not-posted", "release", str(entry_id))
    assert again.exit_code == 1 and "already released by admin" in again.output
    with db() as session:
        assert session.scalars(select(Message.message_id)).all() == ["auto@x"]
        assert session.scalars(select(OutboxEntry.kind)).all() == ["listgate.fanout"]
    assert "0 mails not posted" in run(env, "not-posted", "show").output


def test_refusing_a_request_never_confirmed_mails_nobody(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    """Anyone can ask in another's name: the address had its one confirmation mail, and a
    refusal of what it never confirmed is not mailed to it."""
    run(env, "lists", "create", "club", "--private", "--moderators", "mod@example.org")
    with transaction(db) as session:
        confirmations.request(
            session,
            lists.require(session, "club"),
            "victim@example.org",
            secret="test-secret-key-0123456789",
            base_url="https://lists.test",
            domain="lists.test",
        )
    done = run(env, "requests", "refuse", "victim@example.org", "--list", "club", "--reason", "no")
    assert done.exit_code == 0, done.output
    assert "It was never confirmed: nobody is mailed." in done.output
    with db() as session:
        notices = [json.loads(p)["template"] for p in session.scalars(select(OutboxEntry.payload))]
        status = session.scalars(select(Subscription.status)).one()
    assert (notices, status) == (["confirm"], "ended")


def test_an_id_that_is_no_ascii_number_is_refused_naming_it(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    """An id in another script's digits is not the ASCII id it looks like, nor is ² or a number
    past the database's ids one at all: refused before anything is looked up or released."""
    run(env, "lists", "create", "dev")
    run(env, "subscribe", "bob@example.org", "--list", "dev")
    assert post(db, "auto@x", extra="Auto-Submitted: auto-replied\r\n") == 0
    with db() as session:
        entry_id = session.scalars(select(NotPosted.id)).one()
    for spelled in (chr(0x0660 + entry_id), chr(0xFF10 + entry_id), "²", str(2**31)):
        done = run(env, "not-posted", "release", spelled)
        assert done.exit_code == 2 and f"Invalid value for 'ENTRY_ID': {spelled!r}" in done.output
        done = run(env, "unsubscribe", "bob@example.org", "--list", "dev", "--thread", spelled)
        assert done.exit_code == 2 and "Invalid value for '--thread'" in done.output
        assert run(env, "spool", "retry", spelled).exit_code == 2
    assert "1 mail not posted" in run(env, "not-posted", "show").output


def test_subscribing_someone_already_in_says_so(
    env: dict[str, str], db: sessionmaker[Session]
) -> None:
    run(env, "lists", "create", "dev")
    assert run(env, "subscribe", "bob@example.org", "--list", "dev").output == (
        "subscribed bob@example.org to dev (list)\n"
    )
    assert run(env, "subscribe", "Bob@Example.org", "--list", "dev").output == (
        "bob@example.org is already subscribed to dev (list): nothing changed\n"
    )
    # one whose mail bounced is taken back, and one who left comes back: both are news
    bob = select(Subscription).where(Subscription.address == "bob@example.org")
    with transaction(db) as session:
        session.scalars(bob).one().status = SubscriptionState.SUSPENDED
    assert run(env, "subscribe", "bob@example.org", "--list", "dev").output == (
        "subscribed bob@example.org to dev (list)\n"
    )
    run(env, "unsubscribe", "bob@example.org", "--list", "dev")
    assert run(env, "subscribe", "bob@example.org", "--list", "dev").output == (
        "subscribed bob@example.org to dev (list)\n"
    )
    with db() as session:
        assert session.scalars(bob).one().status == SubscriptionState.ACTIVE
