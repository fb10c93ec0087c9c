"""The lifecycle of subscriptions with history: ending keeps rows, coming back reuses them, every
way in is checked.

Every test here starts from a subscriber who was already mailed (delivery and bounce rows
point at the subscription): the state the first version was never tested on.
"""

from __future__ import annotations

import json
from typing import TypedDict

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import approvals, confirmations, lists, subscriptions
from listgate.confirmations import RateLimited
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Bounce, Delivery, MailingList, Message, Subscription, Thread
from listgate.policy import publish
from listgate.subscriptions import SubscriptionError, change
from tests.support.factories import LinkOptions, MakeList, subscription_of

SECRET = "test-secret-key-0123456789"
KW: LinkOptions = {"secret": SECRET, "base_url": "https://lists.test", "domain": "lists.test"}


def post(
    db: sessionmaker[Session],
    mid: str,
    frm: str = "ann@example.org",
    refs: str = "",
    list_name: str = "dev",
    subject: str = "Topic",
) -> Message:
    raw = f"From: {frm}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
    if refs:
        raw += f"References: {refs}\r\nIn-Reply-To: {refs.split()[-1]}\r\n"
    with transaction(db) as session:
        result = ingest(
            session,
            parse((raw + "\r\nhello\r\n").encode()),
            lists.require(session, list_name),
            domain="lists.test",
        )
        return session.get_one(Message, result.message_pk)


def mailed(db: sessionmaker[Session], msg: Message, address: str, kind: str = "list") -> int:
    """address got msg through its `kind` subscription,
    and bounced once: the history the FKs protect.
    """
    with transaction(db) as session:
        sub = session.scalars(
            select(Subscription).where(
                Subscription.address == address,
                Subscription.kind == kind,
                Subscription.thread_key == (msg.thread_id if kind == "thread" else 0),
            )
        ).one()
        delivery = Delivery(
            message_pk=msg.id,
            address=address,
            subscription_id=sub.id,
            status="sent",
            attempts=1,
            last_error="",
        )
        session.add(delivery)
        session.flush()
        session.add(
            Bounce(
                delivery_id=delivery.id, subscription_id=sub.id, address=address, kind="transient"
            )
        )
        return sub.id


def state(db: sessionmaker[Session], address: str) -> dict[str, str]:
    with db() as session:
        return {
            s.kind: s.status
            for s in session.scalars(select(Subscription).where(Subscription.address == address))
        }


@pytest.fixture
def dev(make_list: MakeList) -> MailingList:
    return make_list("dev")


@pytest.mark.parametrize("action", [subscriptions.LEAVE, subscriptions.DIGEST])
@pytest.mark.parametrize("channel", ["link", "mail", "web", "admin"])
def test_a_subscriber_who_was_mailed_can_leave_or_switch_by_every_channel(
    db: sessionmaker[Session], dev: MailingList, action: str, channel: str
) -> None:
    with transaction(db) as session:
        lists.subscribe(session, session.merge(dev), "bob@example.org")
    sub_id = mailed(db, post(db, "p1@x"), "bob@example.org")
    with transaction(db) as session:
        change(session, session.merge(dev), "bob@example.org", action, channel=channel)
    expected = (
        {"list": "ended"}
        if action == subscriptions.LEAVE
        else {"list": "ended", "digest": "active"}
    )
    assert state(db, "bob@example.org") == expected
    with db() as session:  # the history is still there, pointing at the same row
        assert session.scalar(select(Delivery.subscription_id)) == sub_id
        assert session.scalar(select(Bounce.subscription_id)) == sub_id


def test_leave_return_leave_reuses_one_row_and_keeps_its_history(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    with transaction(db) as session:
        first = confirmations.request(session, session.merge(dev), "bob@example.org", **KW)
        old_link = json.loads(first.outbox[0].payload)["link"].rsplit("/", 1)[1]
        confirmations.confirm_token(session, SECRET, old_link)
    sub_id = mailed(db, post(db, "p1@x"), "bob@example.org")
    with transaction(db) as session:
        change(session, session.merge(dev), "bob@example.org", subscriptions.LEAVE, channel="mail")
    # The confirmation link of the first period must not bring the ended subscription back.
    with transaction(db) as session, pytest.raises(SubscriptionError, match="has been used"):
        confirmations.confirm_token(session, SECRET, old_link)
    assert state(db, "bob@example.org") == {"list": "ended"}
    with transaction(db) as session:
        again = confirmations.request(session, session.merge(dev), "bob@example.org", **KW)
        code = json.loads(again.outbox[0].payload)["reply_to"].split("+confirm-")[1].split("@")[0]
        back = confirmations.confirm_by_code(session, SECRET, session.merge(dev), code)
        assert subscription_of(back).id == sub_id and subscription_of(back).status == "active"
        change(session, session.merge(dev), "bob@example.org", subscriptions.LEAVE, channel="link")
    with db() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.address == "bob@example.org")
            )
            == 1
        )
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1


def test_leaving_the_list_ends_follows_and_mutes_and_says_goodbye_once(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    first, other = post(db, "p1@x"), post(db, "p2@x", subject="Other")
    with transaction(db) as session:
        mlist = session.merge(dev)
        lists.subscribe(session, mlist, "bob@example.org")
        change(
            session,
            mlist,
            "bob@example.org",
            subscriptions.MUTE,
            thread_id=first.thread_id,
            channel="web",
        )
        lists.subscribe(session, mlist, "bob@example.org", "thread", other.thread_id)
    mailed(db, first, "bob@example.org")
    with transaction(db) as session:
        bye = change(
            session, session.merge(dev), "bob@example.org", subscriptions.LEAVE, channel="web"
        )
        again = change(
            session, session.merge(dev), "bob@example.org", subscriptions.LEAVE, channel="web"
        )
    assert state(db, "bob@example.org") == {"list": "ended", "mute": "ended", "thread": "ended"}
    assert [json.loads(e.payload)["template"] for e in bye.outbox] == ["goodbye"]
    assert again.outbox == [] and "not subscribed" in again.message


@pytest.mark.parametrize(
    "bad",
    [
        "a\u2028b@example.org",
        "a\x0bb@example.org",
        "a@exa\x0bmple.org",
        "a\x00@example.org",
        "a\u00a0b@example.org",
        "a\u200bb@example.org",
        "a@exam\u2029ple.org",
        "a\u3000@example.org",
        "a@b@example.org",
        "x" * 65 + "@example.org",
    ],
)
def test_control_and_separator_characters_are_not_addresses(bad: str) -> None:
    with pytest.raises(SubscriptionError, match="not an email address"):
        subscriptions.normalize(bad)


def test_international_addresses_are_kept() -> None:
    assert subscriptions.normalize(" <José@Exämple.org> ") == "josé@exämple.org"


def test_confirmation_mail_to_one_address_is_limited_over_every_list(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    """Forged requests on many lists (or kinds) must not
    flood one inbox: 5 per 15 minutes, like sign-in links.
    """
    names = [f"l{i}" for i in range(7)]
    for name in names:
        make_list(name)
    limit = confirmations.CONFIRM_LIMIT[0]
    sent = []
    for name in names[:limit]:
        with transaction(db) as session:
            sent.append(
                confirmations.request(
                    session, lists.require(session, name), "victim@example.org", **KW
                )
            )
    for name in names[limit:]:
        with (
            transaction(db) as session,
            pytest.raises(RateLimited, match="Too many confirmation mails") as refused,
        ):
            confirmations.request(session, lists.require(session, name), "victim@example.org", **KW)
        assert refused.value.retry_after > 0
    assert sum(len(o.outbox) for o in sent) == limit


class Closed(TypedDict, total=False):
    """What makes a list wait for a moderator (lists.create's keywords)."""

    private: bool
    policy: str


@pytest.mark.parametrize("options", [{"private": True}, {"policy": "members"}])
def test_private_and_members_lists_wait_for_a_moderator_on_every_way_in(
    db: sessionmaker[Session], make_list: MakeList, options: Closed
) -> None:
    make_list("club", moderators="mod@example.org", **options)
    make_list("dev")
    thread_id = post(db, "c1@x", frm="mod@example.org", list_name="club").thread_id
    with transaction(db) as session:
        club = lists.require(session, "club")
        # a confirmed request (link or reply), a signed-in web subscription, a signed-in follow
        pending = confirmations.request(session, club, "a@example.org", **KW)
        token = json.loads(pending.outbox[0].payload)["link"].rsplit("/", 1)[1]
        confirmed = confirmations.confirm_token(session, SECRET, token)
        web = change(session, club, "b@example.org", subscriptions.DIGEST, channel="web")
        follow = change(
            session,
            club,
            "c@example.org",
            subscriptions.FOLLOW,
            thread_id=thread_id,
            channel="mail",
        )
        # a mute is no way in; the moderator is in already
        muted = change(
            session, club, "d@example.org", subscriptions.MUTE, thread_id=thread_id, channel="web"
        )
        moderator = change(
            session, club, "mod@example.org", subscriptions.EVERY_POST, channel="web"
        )
        # an open list lets people in at once
        open_list = change(
            session,
            lists.require(session, "dev"),
            "a@example.org",
            subscriptions.EVERY_POST,
            channel="web",
        )
    assert [json.loads(e.payload)["template"] for e in confirmed.outbox] == ["awaiting"]
    assert [subscription_of(o).status for o in (confirmed, web, follow)] == ["awaiting"] * 3
    assert [subscription_of(o).status for o in (muted, moderator, open_list)] == ["active"] * 3
    with transaction(db) as session:
        club = lists.require(session, "club")
        assert {s.address for s in approvals.waiting(session, [club.id])} == {
            "a@example.org",
            "b@example.org",
            "c@example.org",
        }
        welcome = approvals.approve(
            session, session.get_one(Subscription, subscription_of(confirmed).id), "mod@example.org"
        )
        refused = approvals.refuse(
            session,
            session.get_one(Subscription, subscription_of(web).id),
            "mod@example.org",
            "members only",
        )
    assert [json.loads(e.payload)["template"] for e in welcome.outbox + refused.outbox] == [
        "welcome",
        "refused",
    ]
    assert state(db, "a@example.org") == {"list": "active"} and state(db, "b@example.org") == {
        "digest": "ended"
    }


def test_an_invitation_is_approved_before_the_address_confirms(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("club", private=True, moderators="mod@example.org")
    with transaction(db) as session:
        outcome = confirmations.request(
            session,
            lists.require(session, "club"),
            "new@example.org",
            invited_by="mod@example.org",
            **KW,
        )
        token = json.loads(outcome.outbox[0].payload)["link"].rsplit("/", 1)[1]
        done = confirmations.confirm_token(session, SECRET, token)
    assert (
        subscription_of(done).status == "active"
        and subscription_of(done).approved_by == "mod@example.org"
    )


def test_posting_on_a_private_list_does_not_make_an_outsider_follow(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("club", private=True)  # open policy: anyone may post, but reading is for members
    post(db, "c1@x", frm="outsider@example.org", list_name="club")
    assert state(db, "outsider@example.org") == {}


def test_merging_threads_moves_follows_without_deleting_mailed_rows(
    db: sessionmaker[Session], dev: MailingList
) -> None:
    a, b = post(db, "a1@x", subject="One"), post(db, "b1@x", subject="Two")
    with transaction(db) as session:
        mlist = session.merge(dev)
        lists.subscribe(session, mlist, "f@example.org", "thread", a.thread_id)
        lists.subscribe(session, mlist, "f@example.org", "thread", b.thread_id)
    mailed(db, a, "f@example.org", "thread")
    joined = post(db, "c1@x", refs="<a1@x> <b1@x>")  # links both threads: they merge
    with db() as session:
        rows = session.execute(
            select(Subscription.thread_key, Subscription.status).where(
                Subscription.address == "f@example.org"
            )
        ).all()
        survivor = session.get_one(Message, joined.id).thread_id
    assert sorted(status for _, status in rows) == ["active", "ended"]
    assert [key for key, status in rows if status == "active"] == [survivor]


def test_held_posts_are_no_threads_until_published(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("mod", policy="moderated", moderators="m@example.org")
    held = post(db, "h1@x", frm="someone@example.org", list_name="mod")
    with db() as session:
        mlist = lists.require(session, "mod")
        assert (mlist.thread_count, mlist.message_count) == (0, 0)
    with transaction(db) as session:
        publish(session, session.get_one(Message, held.id))
    post(db, "h2@x", frm="m@example.org", list_name="mod", refs="<h1@x>")
    with db() as session:
        mlist = lists.require(session, "mod")
        assert (mlist.thread_count, mlist.message_count) == (1, 2)
        assert session.scalar(select(func.count()).select_from(Thread)) == 1
