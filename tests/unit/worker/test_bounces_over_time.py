"""Bounces in used state: reports about copies that went out days ago, to subscriptions that
changed since: the same report delivered again, reports in other letter case, a softer then a
harder report of one copy, reports after the person left and came back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from listgate import administration, lists, removal, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Bounce, Delivery, DigestSent, Message, OutboxEntry, Subscription
from listgate.states import DeliveryState, DigestState, SubscriptionState
from listgate.tokens import VERP_DELIVERY, VERP_DIGEST, VERP_SUBSCRIPTION, verp_token
from tests.support.factories import MakeList, make_mail, post, stored_pk
from tests.unit.worker.test_bounces import dsn
from worker import bounces

PAT = "pat@example.org"
DEAD = "550 5.1.1 <pat@example.org>: User unknown"
FULL = "452 4.2.2 <pat@example.org>: Mailbox full, try again later"


def copy_to(db: sessionmaker[Session], settings: Settings, address: str = PAT) -> str:
    """A new post and its copy to address, sent: the copy's VERP token."""
    pk = stored_pk(post(db, make_mail()))
    with transaction(db) as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.address == address.lower())
        ).first()
        now = datetime.now(UTC)
        row = Delivery(
            message_pk=pk,
            address=address.lower(),
            subscription_id=sub.id if sub else None,
            status=DeliveryState.SENT,
            sent_at=now,
            created_at=now,
        )
        session.add(row)
        session.flush()
        return verp_token(settings.secret_key, VERP_DELIVERY, row.id, row.created_at)


def digest_to(
    db: sessionmaker[Session], settings: Settings, later: int = 0, *, claimed: bool = False
) -> str:
    """Pat's daily digest of the day `later` days from today, sent: its VERP token. claimed: sent
    by a worker that claims its digests (as every worker since migration 0022); else as an older
    one left the row (no claim: sent when a digest may still have carried an 's' token)."""
    with transaction(db) as session:
        now = datetime.now(UTC)
        row = DigestSent(
            list_id=lists.require(session, "dev").id,
            address=PAT,
            day=now.date() + timedelta(days=later),
            status=DigestState.SENT,
            message_count=1,
            sent_at=now,
            created_at=now,
            claimed_at=now if claimed else None,
        )
        session.add(row)
        session.flush()
        return verp_token(settings.secret_key, VERP_DIGEST, row.id, row.created_at)


def report(
    db: sessionmaker[Session], settings: Settings, token: str, raw: bytes
) -> list[OutboxEntry]:
    """A bounce mailed to NAME+bounce-token@, handled as the worker does."""
    with transaction(db) as session:
        entry = OutboxEntry(payload=json.dumps({"arg": token}))
        return bounces.handle(session, settings, entry, raw)


def state(db: sessionmaker[Session], address: str = PAT) -> tuple[str, float]:
    with db() as session:
        sub = session.scalars(select(Subscription).where(Subscription.address == address)).one()
        return sub.status, sub.bounce_score


def _setup(make_list: MakeList, db: sessionmaker[Session], settings: Settings) -> Settings:
    make_list("dev")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), PAT)
    return settings


def test_the_same_report_delivered_again_counts_once(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """A relay that retries its own DSN (or a storm of copies of one DSN) reports one failed
    copy: it must count as one bounce, not as many as arrived."""
    settings = _setup(make_list, db, settings)
    token = copy_to(db, settings)
    raw = dsn(PAT, "5.1.1", DEAD)
    storm = int(settings.bounce_score_limit) + 2
    notices = [n for _ in range(storm) for n in report(db, settings, token, raw)]
    assert state(db) == (SubscriptionState.ACTIVE, 1.0), notices
    assert not notices
    with db() as session:  # every report is kept, for the record
        assert session.scalar(select(func.count()).select_from(Bounce)) == storm


def test_the_same_report_of_a_digest_delivered_again_counts_once(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    make_list("dev")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), PAT, kind="digest")
    token = digest_to(db, settings)
    raw = dsn(PAT, "5.1.1", DEAD)
    storm = int(settings.bounce_score_limit) + 2
    notices = [n for _ in range(storm) for n in report(db, settings, token, raw)]
    assert state(db) == (SubscriptionState.ACTIVE, 1.0), notices
    # the next day's digest is another copy: it counts
    report(db, settings, digest_to(db, settings, 1), raw)
    assert state(db) == (SubscriptionState.ACTIVE, 2.0)


def test_a_softer_then_a_harder_report_of_one_copy_counts_as_the_harder(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """A relay first reports a copy as not yet delivered for a full mailbox (4.2.2), then gives
    up on it (5.1.1): one copy failed, counted as a permanent failure, not as both."""
    settings = _setup(make_list, db, settings)
    token = copy_to(db, settings)
    report(db, settings, token, dsn(PAT, "4.2.2", FULL))
    assert state(db) == (SubscriptionState.ACTIVE, 0.5)
    report(db, settings, token, dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)
    report(db, settings, token, dsn(PAT, "4.2.2", FULL))  # a late copy of the first report
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)


def test_reports_of_different_copies_each_count_up_to_the_suspension(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    settings = _setup(make_list, db, settings)
    limit = int(settings.bounce_score_limit)
    notices = []
    for n in range(limit):
        assert state(db) == (SubscriptionState.ACTIVE, float(n))
        notices += report(db, settings, copy_to(db, settings), dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.SUSPENDED, float(limit))
    assert [json.loads(n.payload)["template"] for n in notices] == ["suspended"]


def test_a_report_naming_the_address_in_other_letter_case_is_theirs(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """Pat subscribed as Pat@Example.org; her server reports PAT@EXAMPLE.ORG unknown."""
    make_list("dev")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), "Pat@Example.org")
    token = copy_to(db, settings)
    report(db, settings, token, dsn("PAT@EXAMPLE.ORG", "5.1.1", DEAD.upper()))
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)


def test_a_report_to_one_copy_naming_someone_else_counts_against_nobody(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """Sam got a copy and its VERP address; he mails a DSN naming Pat to it, as many times as
    the limit: his own copy's token cannot blame Pat, and blames him for nothing either."""
    settings = _setup(make_list, db, settings)
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), "sam@example.org")
    sams = copy_to(db, settings, "sam@example.org")
    copy_to(db, settings)
    for _ in range(int(settings.bounce_score_limit)):
        report(db, settings, sams, dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.ACTIVE, 0.0)
    assert state(db, "sam@example.org") == (SubscriptionState.ACTIVE, 0.0)


def test_a_report_to_a_forged_or_altered_token_is_ignored(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """Someone who is not the relay guesses the VERP address of Pat's copy: tokens are signed
    with the site's secret and name the row and when it was made."""
    settings = _setup(make_list, db, settings)
    token = copy_to(db, settings)
    body, _, mac = token.partition(".")
    forged = [
        verp_token("another-secret-0123456789", VERP_DELIVERY, 1),
        f"{body}.{'0' * len(mac)}",
    ]
    for fake in forged * int(settings.bounce_score_limit):
        assert report(db, settings, fake, dsn(PAT, "5.1.1", DEAD)) == []
    assert state(db) == (SubscriptionState.ACTIVE, 0.0)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Bounce)) == 0


def test_reports_about_a_copy_of_a_post_removed_since(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """The moderators removed (and purged) a post after it went out: its copies' reports still
    say whether the mailbox is dead (it counts) or the message was refused (it does not)."""
    settings = _setup(make_list, db, settings)
    token = copy_to(db, settings)
    with transaction(db) as session:
        msg = session.scalars(select(Message)).one()
        removal.remove(session, [msg], "spam", "mod@example.org", purge=True)
    report(db, settings, token, dsn(PAT, "5.7.1", "550 5.7.1 Message rejected as spam"))
    assert state(db) == (SubscriptionState.ACTIVE, 0.0)
    report(db, settings, token, dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)


def test_reports_about_copies_of_a_list_deleted_and_made_again_count_against_nobody(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """dev is deleted with its archive, then made again and Pat joins the new one: the old
    list's copies' reports (their tokens name rows that are gone) are ignored, with no error."""
    settings = _setup(make_list, db, settings)
    old = [copy_to(db, settings) for _ in range(int(settings.bounce_score_limit))]
    with transaction(db) as session:
        administration.delete_list(session, lists.require(session, "dev"), "cli:root", purge=True)
    _setup(make_list, db, settings)
    new = copy_to(db, settings)  # the new list's first copy may get an old copy's id
    for token in old:
        assert report(db, settings, token, dsn(PAT, "5.1.1", DEAD)) == []
    assert state(db) == (SubscriptionState.ACTIVE, 0.0)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Bounce)) == 0
    report(db, settings, new, dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)


def _leave_and_come_back(db: sessionmaker[Session], kind: str) -> None:
    """Pat's subscription of kind ends and starts again (the same row, a new start)."""
    with transaction(db) as session:
        mlist = lists.require(session, "dev")
        mine = select(Subscription).where(Subscription.address == PAT, Subscription.kind == kind)
        subscriptions.end(session, session.scalars(mine), "left")
        subscriptions.start(session, mlist, PAT, kind=kind)


def test_old_tokens_reports_about_copies_sent_before_a_return_do_not_count(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """Tokens mailed before tokens named their row's time: a post's copy ('d', no time; its
    deliveries row says when it went out) and a digest's (the subscription's 's': the newest
    digest sent to the address is the latest it can have gone out). Pat leaves and comes back:
    reports about copies sent before must not count against her fresh subscription; about a
    copy sent since, a 'd' one still does."""
    settings = _setup(make_list, db, settings)
    raw = dsn(PAT, "5.1.1", DEAD)
    old_post = copy_to(db, settings).split(".")[0]
    with db() as session:
        sub_id = session.scalars(
            select(Subscription.id).where(Subscription.address == PAT, Subscription.kind == "list")
        ).one()
    timeless = verp_token(settings.secret_key, VERP_DELIVERY, 1)  # as mailed before: no time
    assert timeless.split(".")[0] == old_post
    _leave_and_come_back(db, "list")
    for _ in range(2):
        assert report(db, settings, timeless, raw) == []
    assert state(db) == (SubscriptionState.ACTIVE, 0.0)
    copy_to(db, settings)
    assert report(db, settings, verp_token(settings.secret_key, VERP_DELIVERY, 2), raw) == []
    assert state(db) == (SubscriptionState.ACTIVE, 1.0), "a copy sent since her return counts"

    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), PAT, kind="digest")
    digest_to(db, settings)
    with db() as session:
        digest_id = session.scalars(
            select(Subscription.id).where(
                Subscription.address == PAT, Subscription.kind == "digest"
            )
        ).one()
    assert digest_id != sub_id
    old_digest = verp_token(settings.secret_key, VERP_SUBSCRIPTION, digest_id)
    _leave_and_come_back(db, "digest")
    for _ in range(2):
        assert report(db, settings, old_digest, raw) == []
    with db() as session:
        sub = session.get_one(Subscription, digest_id)
        assert (sub.status, sub.bounce_score) == (SubscriptionState.ACTIVE, 0.0), (
            "the subscription's token names a digest sent before her return"
        )


def test_an_old_tokens_report_after_a_digest_of_the_new_subscription_does_not_count(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """Pat got a digest under the old token (her subscription's 's', mailed by a worker from
    before digests were claimed), left, came back on the digest and got today's digest (its own
    'g' token, claimed). Her old mailbox's late reports of the old digest arrive: 's' tokens
    stopped before claims began, so that digest went out before she came back; they must not
    count against the new subscription. Without a return, the same report still counts."""
    make_list("dev")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), PAT, kind="digest")
    digest_to(db, settings, -1)
    with db() as session:
        digest_id = session.scalars(select(Subscription.id)).one()
    old = verp_token(settings.secret_key, VERP_SUBSCRIPTION, digest_id)
    raw = dsn(PAT, "5.1.1", DEAD)
    _leave_and_come_back(db, "digest")
    digest_to(db, settings, claimed=True)
    for _ in range(int(settings.bounce_score_limit)):
        assert report(db, settings, old, raw) == []
    assert state(db) == (SubscriptionState.ACTIVE, 0.0), (
        "the 's' token names a digest sent before her return, not today's"
    )

    with transaction(db) as session:  # the same without the return: hers, it counts
        session.execute(delete(Bounce))
        session.execute(delete(DigestSent))
        subscriptions.end(session, session.scalars(select(Subscription)), "left")
        sub = subscriptions.start(session, lists.require(session, "dev"), PAT, kind="digest")
        sub.confirmed_at = datetime.now(UTC) - timedelta(days=2)
    digest_to(db, settings, -1)
    digest_to(db, settings, claimed=True)
    report(db, settings, old, raw)
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)


def _rows(db: sessionmaker[Session]) -> dict[str, tuple[str, float]]:
    """Pat's rows by kind: (state, score)."""
    with db() as session:
        return {
            s.kind: (s.status, s.bounce_score)
            for s in session.scalars(select(Subscription).where(Subscription.address == PAT))
        }


def test_a_digest_reported_after_a_switch_to_every_post_counts_where_she_is_mailed(
    db: sessionmaker[Session], make_list: MakeList, settings: Settings
) -> None:
    """Pat reads the digest, switches to every post; the reports of her digests come after.
    One mailed before the switch is about the mailbox as it was then: recorded, not scored. The
    day's digest mailed after it (the posts of her time on the digest) failing is her mailbox's
    failure while on every post: it counts there, up to the suspension of that mail, not on the
    ended digest row, which can suspend nothing."""
    make_list("dev")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), PAT, kind="digest")
    before = digest_to(db, settings, -1, claimed=True)
    with transaction(db) as session:
        subscriptions.change(
            session, lists.require(session, "dev"), PAT, subscriptions.EVERY_POST, channel="web"
        )
    raw = dsn(PAT, "5.1.1", DEAD)
    assert report(db, settings, before, raw) == []
    assert _rows(db) == {
        "digest": (SubscriptionState.ENDED, 0.0),
        "list": (SubscriptionState.ACTIVE, 0.0),
    }
    after = digest_to(db, settings, claimed=True)
    assert report(db, settings, after, raw) == []
    assert _rows(db)["list"] == (SubscriptionState.ACTIVE, 1.0), (
        "the digest mailed after her switch failed: her every-post mail's score"
    )
    limit = int(settings.bounce_score_limit)
    notices = []
    for _ in range(limit - 1):
        notices += report(db, settings, copy_to_list(db, settings), raw)
    assert _rows(db)["list"] == (SubscriptionState.SUSPENDED, float(limit))
    assert [json.loads(n.payload)["template"] for n in notices] == ["suspended"]
    assert _rows(db)["digest"] == (SubscriptionState.ENDED, 0.0)


def copy_to_list(db: sessionmaker[Session], settings: Settings) -> str:
    """A post's copy to Pat's every-post row: its VERP token."""
    pk = stored_pk(post(db, make_mail()))
    with transaction(db) as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.address == PAT, Subscription.kind == "list")
        ).one()
        now = datetime.now(UTC)
        row = Delivery(
            message_pk=pk,
            address=PAT,
            subscription_id=sub.id,
            status=DeliveryState.SENT,
            sent_at=now,
            created_at=now,
        )
        session.add(row)
        session.flush()
        return verp_token(settings.secret_key, VERP_DELIVERY, row.id, row.created_at)
