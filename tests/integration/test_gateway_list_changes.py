"""A change to a list takes effect on the very next post of a running gateway.

The gateway keeps what it made of a list's row while the row reads the same
(store.lists_with_facts); its policy, moderators, bans and members must still count from the
next post on, on one SMTP connection kept open, with no pause between the change and the post.
"""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import update

from listgate import lists
from listgate.db import transaction
from listgate.models import Ban, MailingList
from listgate.states import ListPolicy
from tests.support.gateway import Env, mail

pytestmark = pytest.mark.integration


def _data(client: smtplib.SMTP, n: int) -> str:
    """Ann's post number n to dev@: the DATA reply."""
    client.mail("ann@example.org")
    code, _ = client.rcpt("dev@lists.test")
    assert code == 250
    code, text = client.data(mail(msgid=f"change{n}@example.org", subject=f"post {n}"))
    return f"{code} {text.decode()}"


def _change(env: Env, **values: object) -> None:
    with transaction(env.db) as s:
        s.execute(update(MailingList).where(MailingList.name == "dev").values(**values))


def test_each_change_to_the_list_decides_the_next_post(env: Env) -> None:
    client = env.smtp()
    client.ehlo()
    try:
        assert _data(client, 1) == "250 2.0.0 OK: stored"
        assert _data(client, 2) == "250 2.0.0 OK: stored"  # the same row: as it was
        _change(env, policy=ListPolicy.MODERATED, moderators="mod@example.org")
        assert _data(client, 3) == "250 2.0.0 OK: held for moderation"
        _change(env, moderators="mod@example.org, ann@example.org")
        assert _data(client, 4) == "250 2.0.0 OK: stored"
        _change(env, policy=ListPolicy.MEMBERS, moderators="")
        assert _data(client, 5) == "250 2.0.0 OK: held for moderation"
        with transaction(env.db) as s:
            lists.subscribe(s, lists.require(s, "dev"), "ann@example.org")
        assert _data(client, 6) == "250 2.0.0 OK: stored"
        _change(env, policy=ListPolicy.OPEN)
        with transaction(env.db) as s:
            s.add(Ban(list_id=lists.require(s, "dev").id, address="ann@example.org"))
        reply = _data(client, 7)
        assert reply.startswith("550 5.7.1 <dev@lists.test>: not accepted"), reply
        assert "banned" in reply
        _change(env, policy=ListPolicy.MODERATED, moderators="mod@example.org")
        with transaction(env.db) as s:
            s.query(Ban).delete()
        assert _data(client, 8) == "250 2.0.0 OK: held for moderation"  # back to an earlier row
    finally:
        client.quit()
