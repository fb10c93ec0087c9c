"""The list settings page (owners change, moderators
look, others get a 404) and the profile page.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import dispatch, lists, subscriptions
from listgate.models import AuditEntry, MailingList, Message, OutboxEntry, Person, Subscription
from listgate.states import ListPolicy
from tests.support.factories import MakeList
from tests.support.web import RecordingSender, csrf, sign_in


@pytest.fixture
def dev(sender: RecordingSender, make_list: MakeList) -> MailingList:
    return make_list("dev", moderators="mod@example.org", owners="owner@example.org")


def test_only_owners_moderators_and_admins_see_the_settings(
    client: FlaskClient, db: sessionmaker[Session], dev: MailingList
) -> None:
    assert client.get("/lists/dev/settings").status_code in (302, 303, 401, 404)
    sign_in(client, db, "reader@example.org")
    assert client.get("/lists/dev/settings").status_code == 404
    assert "List settings" not in client.get("/lists/dev/").get_data(as_text=True)
    token = csrf(client, "/lists/dev/")
    assert (
        client.post(
            "/lists/dev/settings", data={"csrf_token": token, "policy": "moderated"}
        ).status_code
        == 404
    )
    with db() as session:
        assert lists.require(session, "dev").policy == "open"


def test_a_moderator_sees_the_settings_but_cannot_change_them(
    client: FlaskClient, db: sessionmaker[Session], dev: MailingList
) -> None:
    sign_in(client, db, "mod@example.org")
    page = client.get("/lists/dev/settings").get_data(as_text=True)
    assert "its owners change these settings" in page and "<fieldset disabled>" in page
    token = csrf(client, "/lists/dev/")
    response = client.post(
        "/lists/dev/settings",
        data={"csrf_token": token, "title": "Mine", "policy": "open", "reply_to": "none"},
    )
    assert response.status_code == 404


def test_an_owner_changes_settings_and_roles_and_the_page_shows_who_and_when(
    client: FlaskClient, db: sessionmaker[Session], dev: MailingList
) -> None:
    sign_in(client, db, "owner@example.org")
    token = csrf(client, "/lists/dev/settings")
    client.post(
        "/lists/dev/settings",
        data={
            "csrf_token": token,
            "title": "Developers",
            "description": "Code talk",
            "policy": "members",
            "private": "yes",
            "reply_to": "list",
        },
    )
    client.post(
        "/lists/dev/roles",
        data={
            "csrf_token": token,
            "role": "moderator",
            "action": "add",
            "address": "New.Mod@Example.org",
        },
    )
    bad = client.post(
        "/lists/dev/settings",
        data={"csrf_token": token, "title": "x", "policy": "anarchy", "reply_to": "none"},
        follow_redirects=True,
    )
    assert "unknown policy" in bad.get_data(as_text=True)
    with db() as session:
        mlist = lists.require(session, "dev")
        assert (mlist.title, mlist.policy, mlist.private, mlist.reply_to) == (
            "Developers",
            "members",
            True,
            "list",
        )
        assert mlist.moderator_addresses() == {"mod@example.org", "new.mod@example.org"}
        actions = [
            (e.actor, e.action) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert ("owner@example.org", "edit") in actions and (
        "owner@example.org",
        "add moderator",
    ) in actions
    page = client.get("/lists/dev/settings").get_data(as_text=True)
    assert (
        "policy: &#39;open&#39; -&gt; &#39;members&#39;" in page
        and "add moderator: new.mod@example.org" in page
    )
    assert page.count("owner@example.org") >= 3  # listed as owner and as the author of the changes


def test_a_site_admin_may_change_any_list(
    app: Flask, client: FlaskClient, db: sessionmaker[Session], dev: MailingList
) -> None:
    app.extensions["listgate"].settings = app.extensions["listgate"].settings.with_(
        admins=("root@example.org",)
    )
    sign_in(client, db, "root@example.org")
    token = csrf(client, "/lists/dev/settings")
    client.post(
        "/lists/dev/roles",
        data={
            "csrf_token": token,
            "role": "owner",
            "action": "remove",
            "address": "owner@example.org",
        },
    )
    with db() as session:
        assert lists.require(session, "dev").owner_addresses() == set()


def test_the_profile_name_is_the_from_of_web_posts(
    client: FlaskClient, db: sessionmaker[Session], dev: MailingList
) -> None:
    sign_in(client, db, "ann@example.org")
    token = csrf(client, "/me/profile")
    client.post(
        "/me/profile",
        data={
            "csrf_token": token,
            "name": "Ann  Author",
            "copy_own_posts": "yes",
            "auto_follow": "no",
            "digest_format": "plain",
        },
    )
    with db() as session:
        person = session.get_one(Person, "ann@example.org")
        assert (person.name, person.copy_own_posts, person.auto_follow, person.digest_format) == (
            "Ann Author",
            True,
            False,
            "plain",
        )
    client.post(
        "/lists/dev/new", data={"csrf_token": token, "subject": "Hello", "body": "From the web."}
    )
    with db() as session:
        msg = session.scalars(select(Message)).one()
        assert (msg.from_name, msg.from_addr) == ("Ann Author", "ann@example.org")
        assert b"From: Ann Author <ann@example.org>" in msg.raw.data
    refused = client.post(
        "/me/profile", data={"csrf_token": token, "name": "Evil <x@y>"}, follow_redirects=True
    )
    assert "cannot contain" in refused.get_data(as_text=True)


def test_opening_a_members_only_list_lets_waiting_requests_in_and_mails_them(
    client: FlaskClient, db: sessionmaker[Session], dev: MailingList, sender: RecordingSender
) -> None:
    with db() as session, session.begin():
        mlist = lists.require(session, "dev")
        mlist.policy = ListPolicy.MEMBERS
        assert subscriptions.start(session, mlist, "kim@example.org").status == "awaiting"
    sign_in(client, db, "owner@example.org")
    sent_before = len(sender.sent)
    token = csrf(client, "/lists/dev/settings")
    page = client.post(
        "/lists/dev/settings",
        data={"csrf_token": token, "title": "dev", "policy": "open", "reply_to": "none"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "let in kim@example.org (list)" in page
    assert sender.names[sent_before:] == [dispatch.SEND_NOTICE], "no welcome mail enqueued"
    with db() as session:
        (sub,) = session.scalars(select(Subscription)).all()
        assert (sub.status, sub.approved_by) == ("active", "owner@example.org")
        welcome = session.get_one(OutboxEntry, sender.sent[sent_before][1][0])
    assert '"template": "welcome"' in welcome.payload and "kim@example.org" in welcome.payload
