"""PostgreSQL: the gateway's writer decides a batch from the facts it read for earlier batches
(gateway.factcache) and spools it only if they still hold in the append's own statement. Every
change of a fact, committed before a post's DATA (by the command line, the web, anything), must
get the very answer a fresh look-up gives, on one SMTP connection kept open, with no pause.

Each journey first posts twice from the same sender (the second decided from the cache), then
changes a fact and posts again.
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from listgate import lists
from listgate.db import transaction
from listgate.models import Message
from listgate.states import ListPolicy
from tests.support.commands import command_env, run
from tests.support.gateway import Env, mail
from tests.support.web import session_for

pytestmark = pytest.mark.integration

STORED = "250 2.0.0 OK: stored"
HELD = "250 2.0.0 OK: held for moderation"
DUPLICATE = "250 2.0.0 OK: already archived, not stored twice"
BANNED = "550 5.7.1 <dev@lists.test>: not accepted: ann@example.org is banned from posting"
VARIANT = "250 2.0.0 OK: stored beside the archived message with the same Message-ID"
NO_LIST = "550 5.1.1 <dev@lists.test>: no such list here"


class Journey:
    """A running gateway on PostgreSQL with dev@, one SMTP connection, the command line and the
    web archive on the same database."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.env = Env(tmp_path, LISTGATE_DATABASE_URL=url)
        self.env.make_list("dev", moderators="mod@example.org")
        self.env.start()
        self.cli_env = command_env(tmp_path, LISTGATE_DATABASE_URL=url)
        self.client = self.env.smtp()
        self.client.ehlo()
        self.n = 0
        self.apps: list[Flask] = []

    def post(self, msgid: str = "", frm: str = "ann@example.org", subject: str = "") -> str:
        """A post from frm to dev@ on the open connection: the DATA reply."""
        self.n += 1
        self.client.mail(frm)
        code, reply = self.client.rcpt("dev@lists.test")
        assert code == 250, reply
        raw = mail(
            msgid=msgid or f"j{self.n}@example.org", subject=subject or f"post {self.n}", frm=frm
        )
        code, text_ = self.client.data(raw)
        return f"{code} {text_.decode()}"

    def cli(self, *args: str) -> str:
        """`listgate ARGS` on the site: its output (exit 0 asserted)."""
        result = run(self.cli_env, *args)
        assert result.exit_code == 0, result.output
        return result.output

    def web(self) -> tuple[FlaskClient, str, int]:
        """The web archive signed in as dev@'s moderator: the client, its CSRF token, dev's id."""
        from webarchive import create_app

        app = create_app(self.env.settings)
        self.apps.append(app)
        client = app.test_client()
        with self.env.db.factory() as s:
            list_id = lists.require(s, "dev").id
        return client, session_for(client, "mod@example.org"), list_id

    def close(self) -> None:
        with contextlib.suppress(smtplib.SMTPException):
            self.client.quit()
        for app in self.apps:
            app.extensions["listgate"].engine.dispose()
        self.env.close()


@pytest.fixture
def journey(tmp_path: Path, postgres_db: str) -> Iterator[Journey]:
    j = Journey(tmp_path, postgres_db)
    try:
        yield j
    finally:
        j.close()


def test_a_ban_from_the_web_refuses_the_next_post_and_lifting_it_lets_the_next_one_in(
    journey: Journey,
) -> None:
    assert [journey.post(), journey.post()] == [STORED, STORED]
    client, token, list_id = journey.web()
    form = {"csrf_token": token, "address": "ann@example.org", "reason": "trolling"}
    assert client.post(f"/moderation/lists/{list_id}/bans", data=form).status_code == 303
    assert journey.post().startswith(BANNED)
    assert journey.post().startswith(BANNED)  # the ban itself from the cache now
    unban = {**form, "action": "unban"}
    assert client.post(f"/moderation/lists/{list_id}/bans", data=unban).status_code == 303
    assert journey.post() == STORED
    assert journey.post(frm="bob@example.org") == STORED


def test_a_member_removed_on_the_command_line_is_held_from_the_next_post(
    journey: Journey,
) -> None:
    journey.cli("lists", "edit", "dev", "--policy", "members")
    journey.cli("subscribe", "--list", "dev", "ann@example.org")
    assert [journey.post(), journey.post()] == [STORED, STORED]
    journey.cli("unsubscribe", "--list", "dev", "ann@example.org")
    assert [journey.post(), journey.post()] == [HELD, HELD]
    journey.cli("subscribe", "--list", "dev", "ann@example.org")
    assert journey.post() == STORED


def test_each_policy_change_on_the_command_line_decides_the_next_post(journey: Journey) -> None:
    assert [journey.post(), journey.post()] == [STORED, STORED]
    journey.cli("lists", "edit", "dev", "--policy", "members")
    assert [journey.post(), journey.post()] == [HELD, HELD]
    journey.cli("lists", "edit", "dev", "--policy", "moderated")
    assert journey.post() == HELD
    assert journey.post(frm="mod@example.org") == STORED
    journey.cli("moderators", "add", "dev", "ann@example.org")
    assert journey.post() == STORED
    journey.cli("lists", "edit", "dev", "--policy", "open")
    assert journey.post(frm="bob@example.org") == STORED


def test_an_owner_added_or_removed_on_the_command_line_decides_the_next_post(
    journey: Journey,
) -> None:
    """An owner posts to a members-only list as a member does; the writer's cached facts learn
    of the change with the next post (the owners column moves the facts epoch)."""
    journey.cli("lists", "edit", "dev", "--policy", "members")
    assert [journey.post(), journey.post()] == [HELD, HELD]  # the second from the cache
    journey.cli("owners", "add", "dev", "ann@example.org")
    assert [journey.post(), journey.post()] == [STORED, STORED]
    journey.cli("owners", "remove", "dev", "ann@example.org")
    assert journey.post() == HELD


def test_a_list_deleted_between_rcpt_and_data_is_no_list_at_data(journey: Journey) -> None:
    assert [journey.post(), journey.post()] == [STORED, STORED]
    journey.env.make_list("empty")
    client = journey.client
    client.mail("ann@example.org")
    assert client.rcpt("dev@lists.test")[0] == 250
    journey.cli("lists", "delete", "dev", "--purge")
    code, reply = client.data(mail(msgid="after-delete@example.org"))
    assert f"{code} {reply.decode()}" == NO_LIST


def test_a_message_id_archived_is_a_duplicate_the_next_time(journey: Journey) -> None:
    assert journey.post("dup@example.org", subject="once") == STORED
    with journey.env.db() as s:  # archived (the spool drained)
        assert s.scalar(select(func.count()).select_from(Message)) == 1
    assert journey.post() == STORED  # the cache knows ann on dev@ now
    assert journey.post("dup@example.org", subject="once") == DUPLICATE
    assert journey.post("dup@example.org", subject="once") == DUPLICATE
    assert journey.post("dup@example.org", subject="other bytes") == VARIANT


def test_one_message_id_sent_twice_at_once_is_archived_once(journey: Journey) -> None:
    assert journey.post() == STORED

    def send(_: int) -> str:
        with journey.env.smtp() as client:
            client.ehlo()
            client.mail("ann@example.org")
            client.rcpt("dev@lists.test")
            code, reply = client.data(mail(msgid="twice@example.org"))
            return f"{code} {reply.decode()}"

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(send, range(2)))
    assert STORED in replies, replies  # the first one spooled is stored
    assert set(replies) <= {STORED, DUPLICATE}, replies
    with journey.env.db() as s:
        found = s.scalars(select(Message.id).where(Message.message_id == "twice@example.org"))
        assert len(found.all()) == 1


def test_without_the_epoch_row_every_post_is_decided_by_a_look_up(journey: Journey) -> None:
    assert [journey.post(), journey.post()] == [STORED, STORED]
    with transaction(journey.env.db.factory) as s:
        s.execute(text("DELETE FROM facts_epoch"))
    assert journey.post() == STORED
    client, token, list_id = journey.web()
    form = {"csrf_token": token, "address": "ann@example.org", "reason": "trolling"}
    assert client.post(f"/moderation/lists/{list_id}/bans", data=form).status_code == 303
    assert journey.post().startswith(BANNED)
    with transaction(journey.env.db.factory) as s:
        s.execute(text("UPDATE lists SET policy = :p"), {"p": ListPolicy.MODERATED.value})
    assert journey.post(frm="bob@example.org") == HELD
