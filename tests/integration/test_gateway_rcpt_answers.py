"""RCPT's answers for every kind of recipient, from a gateway whose look-ups open no ORM session.

RCPT reads the list with the statement DATA reads it with (store.lists_with_facts, Core, on the
look-up engine), and a private list's checks are Core statements too. The gateway here is given
a read session factory that refuses to open a session: every answer must still be the one a
sender saw before (a private list answered like a missing one unless the sender may know it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.handler import GatewayHandler
from gateway.server import GatewayServer
from listgate import confirmations, lists
from listgate.db import session_factory, transaction, writer
from listgate.models import Subscription
from listgate.tokens import verp_token
from tests.support.factories import subscription_of
from tests.support.gateway import Env, RawClient

pytestmark = pytest.mark.integration
UNKNOWN = "550 5.1.1 <{0}@lists.test>: no list named {1!r} here"
OK = "250 2.1.5 Recipient OK"


class NoSessions(sessionmaker[Session]):
    """A read session factory whose sessions never open (its engine is still the gateway's)."""

    def __call__(self, **kwargs: Any) -> Session:
        raise AssertionError("RCPT opened an ORM session")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Env, dict[str, str]]]:
    """dev@ (open), secret@ (private: bob subscribed, mod@ moderates), a gateway without ORM
    reads; and a valid confirmation code and bounce token of secret@."""
    env = Env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="1000")
    env.make_list("dev")
    env.make_list("secret", private=True, policy="members", moderators="mod@example.org")
    with transaction(env.db) as s:
        secret = lists.require(s, "secret")
        lists.subscribe(s, secret, "bob@example.org")
        asked = confirmations.request(
            s,
            secret,
            "carol@example.org",
            secret=env.settings.secret_key,
            base_url="http://x",
            domain="lists.test",
        )
        code = confirmations.confirm_code(env.settings.secret_key, subscription_of(asked))
    with env.db() as s:
        bob = s.scalar(select(Subscription.id).where(Subscription.address == "bob@example.org"))
    assert bob is not None
    tokens = {"code": code, "token": verp_token(env.settings.secret_key, "s", bob)}
    db = session_factory(writer(env.engine))
    handler = GatewayHandler(env.settings, db, read_factory=NoSessions(bind=env.engine))
    server = GatewayServer(env.settings, handler, workers=2)
    server.start()
    try:
        yield env, tokens
    finally:
        server.stop()
        handler.spool.close()
        env.engine.dispose()


def rcpt(env: Env, sender: str, local: str) -> str:
    """The reply to RCPT TO:<local@lists.test> after MAIL FROM:<sender>."""
    c = RawClient(env.settings.smtp_port)
    try:
        c.cmd("EHLO client.example")
        assert c.cmd(f"MAIL FROM:<{sender}>").startswith("250")
        return c.cmd(f"RCPT TO:<{local}@lists.test>")
    finally:
        c.close()


def test_rcpt_answers_each_kind_of_recipient_as_before(site: tuple[Env, dict[str, str]]) -> None:
    env, t = site
    expected = [
        # a public list and its command addresses: anyone
        ("ann@example.org", "dev", OK),
        ("ann@example.org", "DEV", OK),
        ("ann@example.org", "dev+subscribe", OK),
        ("", "dev+help", OK),
        # no such list, and its command addresses
        ("ann@example.org", "nolist", UNKNOWN.format("nolist", "nolist")),
        ("ann@example.org", "nolist+help", UNKNOWN.format("nolist+help", "nolist")),
        # a private list: like no list to an outsider, whatever the address
        ("outsider@example.org", "secret", UNKNOWN.format("secret", "secret")),
        ("outsider@example.org", "secret+subscribe", UNKNOWN.format("secret+subscribe", "secret")),
        ("", "secret", UNKNOWN.format("secret", "secret")),
        # ... to a member, a moderator (any case), one who asked to join: there
        ("bob@example.org", "secret", OK),
        ("bob@example.org", "secret+unsubscribe", OK),
        ("MOD@example.org", "secret", OK),
        ("carol@example.org", "secret", OK),
        # ... and to mail carrying a token made for it, from anyone
        ("outsider@example.org", f"secret+confirm-{t['code']}", OK),
        (
            "outsider@example.org",
            "secret+confirm-1.aaaaaaaaaaaa",
            UNKNOWN.format("secret+confirm-1.aaaaaaaaaaaa", "secret"),
        ),
        (
            "outsider@example.org",
            "secret+confirm-zz.aaaaaaaaaaaa",
            UNKNOWN.format("secret+confirm-zz.aaaaaaaaaaaa", "secret"),
        ),
        ("", f"secret+bounce-{t['token']}", OK),
        (
            "",
            "secret+bounce-s1.0123456789",
            UNKNOWN.format("secret+bounce-s1.0123456789", "secret"),
        ),
    ]
    got = [(sender, local, rcpt(env, sender, local)) for sender, local, _ in expected]
    assert got == expected
    # the moderator's address does not make the public list's answers depend on the sender
    assert rcpt(env, "outsider@example.org", "dev") == OK
