"""Double opt-in, confirmation by link or code, signed unsubscribe tokens, follow/mute."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import confirmations, lists, subscriptions, tokens
from listgate.db import transaction
from listgate.models import MailingList, Subscription, Thread
from listgate.subscriptions import SubscriptionError
from tests.support.factories import LinkOptions, MakeList, subscription_of

SECRET = "test-secret-key-0123456789"
KW: LinkOptions = {"secret": SECRET, "base_url": "https://lists.test", "domain": "lists.test"}


@pytest.fixture
def dev(make_list: MakeList) -> MailingList:
    return make_list("dev")


def _thread(db: sessionmaker[Session], mlist: MailingList) -> int:
    with transaction(db) as session:
        thread = Thread(list_id=mlist.id, subject="Plans")
        session.add(thread)
        session.flush()
        return thread.id


def test_request_is_pending_and_mails_the_address_itself(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    with transaction(db) as session:
        outcome = confirmations.request(session, session.merge(dev), "Ann@Example.org", **KW)
    assert subscription_of(outcome).status == "pending"
    payload = json.loads(outcome.outbox[0].payload)
    assert payload["template"] == "confirm" and payload["to"] == "ann@example.org"
    assert payload["link"].startswith("https://lists.test/confirm/")
    assert payload["reply_to"].startswith("dev+confirm-") and payload["reply_to"].endswith(
        "@lists.test"
    )


def test_confirm_by_link_and_by_code(db: sessionmaker[Session], dev: MailingList) -> None:
    with transaction(db) as session:
        a = confirmations.request(session, session.merge(dev), "a@example.org", **KW)
        b = confirmations.request(session, session.merge(dev), "b@example.org", **KW)
        link_token = json.loads(a.outbox[0].payload)["link"].rsplit("/", 1)[1]
        code = json.loads(b.outbox[0].payload)["reply_to"].split("+confirm-")[1].split("@")[0]
    with transaction(db) as session:
        done = confirmations.confirm_token(session, SECRET, link_token)
        assert subscription_of(done).status == "active"
        assert json.loads(done.outbox[0].payload)["template"] == "welcome"
        assert (
            subscription_of(
                confirmations.confirm_by_code(session, SECRET, session.merge(dev), code)
            ).status
            == "active"
        )
    with transaction(db) as session, pytest.raises(SubscriptionError):
        confirmations.confirm_by_code(session, SECRET, session.merge(dev), code[:-2] + "00")


def old_token(monkeypatch: pytest.MonkeyPatch, purpose: str, data: object, age: float) -> str:
    """A token signed `age` seconds ago."""
    import time

    import itsdangerous.timed

    real = time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() - age)
    token = tokens.make(SECRET, purpose, data)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real)
    return token


def test_forged_and_expired_confirm_links_are_refused(
    db: sessionmaker[Session], dev: MailingList, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = tokens.make(
        "another-secret-0123456789", tokens.CONFIRM, {"s": 1, "a": "x@example.org"}
    )
    with transaction(db) as session, pytest.raises(SubscriptionError, match="not valid"):
        confirmations.confirm_token(session, SECRET, forged)
    expired = old_token(monkeypatch, tokens.CONFIRM, {"s": 1, "a": "x@example.org"}, 8 * 86400)
    with pytest.raises(SubscriptionError, match="expired"):
        confirmations.read_confirm(SECRET, expired)


def test_unsubscribe_token_leaves_the_list_or_only_the_thread(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    thread_id = _thread(db, dev)
    with transaction(db) as session:
        mlist = session.merge(dev)
        lists.subscribe(session, mlist, "a@example.org")
        subscriptions.change(
            session,
            mlist,
            "f@example.org",
            subscriptions.FOLLOW,
            thread_id=thread_id,
            channel="web",
        )
    thread_token = subscriptions.unsubscribe_token(SECRET, dev.id, "f@example.org", thread_id)
    list_token = subscriptions.unsubscribe_token(SECRET, dev.id, "a@example.org")
    with transaction(db) as session:
        assert subscriptions.read_unsubscribe(session, SECRET, thread_token)[1:] == (
            "f@example.org",
            thread_id,
        )
        subscriptions.unsubscribe_by_token(session, SECRET, thread_token)
        out = subscriptions.unsubscribe_by_token(session, SECRET, list_token)
        assert json.loads(out.outbox[0].payload)["template"] == "goodbye"
    assert _states(db) == {
        ("a@example.org", "list"): ("ended", "left (link)"),
        ("f@example.org", "thread"): ("ended", "left the thread (link)"),
    }


def _states(db: sessionmaker[Session]) -> dict[tuple[str, str], tuple[str, str]]:
    with db() as session:
        return {
            (s.address, s.kind): (s.status, s.end_reason)
            for s in session.scalars(select(Subscription))
        }


def test_leaving_a_thread_as_list_subscriber_mutes_it(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    thread_id = _thread(db, dev)
    with transaction(db) as session:
        mlist = session.merge(dev)
        lists.subscribe(session, mlist, "a@example.org")
        subscriptions.change(
            session,
            mlist,
            "a@example.org",
            subscriptions.FOLLOW,
            thread_id=thread_id,
            channel="web",
        )
        subscriptions.change(
            session,
            mlist,
            "a@example.org",
            subscriptions.LEAVE_THREAD,
            thread_id=thread_id,
            channel="mail",
        )
    assert _states(db) == {
        ("a@example.org", "list"): ("active", ""),
        ("a@example.org", "mute"): ("active", ""),
        ("a@example.org", "thread"): ("ended", "muted"),
    }


def test_bad_addresses_and_unknown_threads_are_refused(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    with transaction(db) as session:
        with pytest.raises(SubscriptionError, match="not an email address"):
            confirmations.request(session, session.merge(dev), "not an address", **KW)
        with pytest.raises(SubscriptionError, match="no thread 999 on the list dev"):
            subscriptions.change(
                session,
                session.merge(dev),
                "a@example.org",
                subscriptions.FOLLOW,
                thread_id=999,
                channel="web",
            )


def test_repeated_requests_send_one_confirmation_per_ten_minutes(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    with transaction(db) as session:
        first = confirmations.request(session, session.merge(dev), "a@example.org", **KW)
        again = confirmations.request(session, session.merge(dev), "a@example.org", **KW)
    assert len(first.outbox) == 1 and again.outbox == []


def test_confirm_address_under_64_for_the_longest_list_name(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    from listgate.addresses import MAX_LIST_NAME, parse_recipient

    name = "c" * MAX_LIST_NAME
    mlist = make_list(name)
    with transaction(db) as session:
        outcome = confirmations.request(session, session.merge(mlist), "a@example.org", **KW)
        reply_to = json.loads(outcome.outbox[0].payload)["reply_to"]
        created = subscription_of(outcome).created_at
    # the largest id an Integer column holds gives the longest code
    largest = Subscription(id=2**31 - 1, address="a@example.org", created_at=created)
    longest = confirmations.confirm_code(SECRET, largest)
    for address in (reply_to, f"{name}+confirm-{longest}@lists.test"):
        assert len(address.split("@")[0]) < 64
        recipient = parse_recipient(address, "lists.test")
        assert recipient is not None and (recipient.list_name, recipient.command) == (
            name,
            "confirm",
        )
    with transaction(db) as session:
        code = reply_to.split("+confirm-")[1].split("@")[0]
        assert (
            subscription_of(
                confirmations.confirm_by_code(session, SECRET, session.merge(mlist), code)
            ).status
            == "active"
        )


def test_list_names_longer_than_the_limit_are_refused(db: sessionmaker[Session]) -> None:
    from listgate.addresses import MAX_LIST_NAME

    with transaction(db) as session, pytest.raises(lists.ListError, match=f"up to {MAX_LIST_NAME}"):
        lists.create(session, "x" * (MAX_LIST_NAME + 1))


def _link_and_code(outcome: subscriptions.Outcome) -> tuple[str, str]:
    payload = json.loads(outcome.outbox[0].payload)
    return payload["link"].rsplit("/", 1)[1], payload["reply_to"].split("+confirm-")[1][:-11]


def test_a_request_replaced_by_a_newer_one_is_confirmed_only_by_the_newer_mail(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    with transaction(db) as session:
        first = confirmations.request(session, session.merge(dev), "a@example.org", **KW)
        subscription_of(first).created_at -= confirmations.RESEND_AFTER  # asked long ago
    with transaction(db) as session:
        second = confirmations.request(session, session.merge(dev), "a@example.org", **KW)
    (old_link, old_code), (link, code) = _link_and_code(first), _link_and_code(second)
    with transaction(db) as session, pytest.raises(SubscriptionError, match="replaced by a newer"):
        confirmations.confirm_token(session, SECRET, old_link)
    with transaction(db) as session, pytest.raises(SubscriptionError, match="replaced by a newer"):
        confirmations.confirm_by_code(session, SECRET, session.merge(dev), old_code)
    with db() as session:
        assert session.scalar(select(Subscription.status)) == "pending"
    with transaction(db) as session:
        assert (
            subscription_of(confirmations.confirm_token(session, SECRET, link)).status == "active"
        )
    with transaction(db) as session:
        done = confirmations.confirm_by_code(session, SECRET, session.merge(dev), code)
        assert done.message == "Your subscription was already confirmed."


def test_links_and_codes_mailed_before_they_named_their_request_still_confirm_it(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    with transaction(db) as session:
        a = subscription_of(
            confirmations.request(session, session.merge(dev), "a@example.org", **KW)
        )
        b = subscription_of(
            confirmations.request(session, session.merge(dev), "b@example.org", **KW)
        )
        link = tokens.make(SECRET, tokens.CONFIRM, {"s": a.id, "a": a.address})
        code = confirmations.confirm_code(SECRET, b, int(b.created_at.timestamp()))
    with transaction(db) as session:
        assert (
            subscription_of(confirmations.confirm_token(session, SECRET, link)).status == "active"
        )
        by_code = confirmations.confirm_by_code(session, SECRET, session.merge(dev), code)
        assert subscription_of(by_code).status == "active"
