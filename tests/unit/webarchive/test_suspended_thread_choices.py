"""A list member suspended by bounces stays a member: what she does with a thread meanwhile holds
when her mail starts again.

Pat gets every post of "dev". Her mailbox fails for a while and bounces suspend her. Meanwhile she
leaves a thread she does not want (by replying "unsubscribe" to one of its mails, or with the
thread page's button), then resumes her mail on "My subscriptions". The next post of that thread
must not reach her: a list member who leaves a thread mutes it (README, "Leaving or muting a
thread"), suspended or not; the other threads reach her again.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, subscriptions
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Message, Subscription
from listgate.states import BounceKind, SubscriptionKind, SubscriptionState
from tests.support.factories import MakeList, make_mail, post, stored_pk
from tests.support.web import RecordingSender, csrf, sign_in
from worker import bounces
from worker.notify import recipients

PAT = "pat@example.org"


def _suspend(db: sessionmaker[Session], settings: Settings) -> int:
    """Pat's every-post subscription, bounced until suspended."""
    with transaction(db) as session:
        sub = session.scalars(
            select(Subscription).where(
                Subscription.address == PAT, Subscription.kind == SubscriptionKind.LIST
            )
        ).one()
        while sub.status == SubscriptionState.ACTIVE:
            bounces.score(session, settings, sub, BounceKind.PERMANENT)
        return sub.id


def _reaches_pat(db: sessionmaker[Session], pk: int) -> bool:
    with db() as session:
        return PAT in recipients(session, session.get_one(Message, pk), set())


@pytest.mark.parametrize("way", ["mail", "web"])
def test_a_thread_left_while_suspended_stays_left_when_the_mail_resumes(
    client: FlaskClient,
    db: sessionmaker[Session],
    make_list: MakeList,
    settings: Settings,
    sender: RecordingSender,
    way: str,
) -> None:
    make_list("dev")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), PAT)
    noisy = post(db, make_mail("Noisy", msgid="n@x.test"))
    quiet = post(db, make_mail("Quiet", msgid="q@x.test"))
    assert _reaches_pat(db, stored_pk(noisy))
    sub_id = _suspend(db, settings)
    sign_in(client, db, PAT)

    if way == "mail":  # her reply "unsubscribe" to a mail of the thread she got before
        with transaction(db) as session:
            said = subscriptions.change(
                session,
                lists.require(session, "dev"),
                PAT,
                subscriptions.LEAVE_THREAD,
                thread_id=noisy.thread_id or 0,
                channel=subscriptions.MAIL,
            ).message
    else:  # the thread page's button
        page = client.get(f"/threads/{noisy.thread_id}").text
        assert "Mute this thread" in page, "a suspended member is offered no way to leave it"
        answer = client.post(
            f"/threads/{noisy.thread_id}/mute",
            data={"csrf_token": csrf(client, f"/threads/{noisy.thread_id}")},
            follow_redirects=True,
        )
        said = answer.text
    assert "no more mail from this thread" in said

    # back: "Resume" on My subscriptions
    answer = client.post(
        f"/me/subscriptions/{sub_id}",
        data={"csrf_token": csrf(client, "/me/subscriptions"), "action": "resume"},
    )
    assert answer.status_code == 303
    with db() as session:
        assert session.get_one(Subscription, sub_id).status == SubscriptionState.ACTIVE
    assert "You muted this thread" in client.get(f"/threads/{noisy.thread_id}").text

    later = post(db, make_mail("Re: Noisy", msgid="n2@x.test", in_reply_to="n@x.test"))
    other = post(db, make_mail("Re: Quiet", msgid="q2@x.test", in_reply_to="q@x.test"))
    assert later.thread_id == noisy.thread_id and other.thread_id == quiet.thread_id
    assert not _reaches_pat(db, stored_pk(later)), "the thread she left reaches her again"
    assert _reaches_pat(db, stored_pk(other))


@pytest.mark.parametrize("kind", [SubscriptionKind.LIST, SubscriptionKind.DIGEST])
def test_a_suspended_readers_thread_page_says_her_mail_is_stopped(
    client: FlaskClient,
    db: sessionmaker[Session],
    make_list: MakeList,
    settings: Settings,
    kind: SubscriptionKind,
) -> None:
    """While bounces stop her mail, the thread page does not say the thread reaches her (with the
    list, or as a thread she follows): it says her mail is stopped and where to resume it."""
    make_list("dev")
    with transaction(db) as session:
        subscriptions.start(session, lists.require(session, "dev"), PAT, kind)
    noisy = post(db, make_mail("Noisy", msgid="n@x.test"))
    followed = post(db, make_mail("Followed", msgid="f@x.test"))
    with transaction(db) as session:
        subscriptions.start(
            session,
            lists.require(session, "dev"),
            PAT,
            SubscriptionKind.THREAD,
            followed.thread_id or 0,
        )
    with transaction(db) as session:
        sub = session.scalars(
            select(Subscription).where(Subscription.address == PAT, Subscription.kind == kind)
        ).one()
        while sub.status == SubscriptionState.ACTIVE:
            bounces.score(session, settings, sub, BounceKind.PERMANENT)
    sign_in(client, db, PAT)
    for thread_id in (noisy.thread_id, followed.thread_id):
        page = client.get(f"/threads/{thread_id}").text
        assert "You get this thread with the list." not in page
        assert "You follow this thread by mail." not in page
        assert "mail to you bounced" in page and 'href="/me/subscriptions"' in page, page
    assert not _reaches_pat(
        db, stored_pk(post(db, make_mail("Re: Followed", in_reply_to="f@x.test")))
    )
