"""No open relay: RCPT to anything but our lists and their
command addresses is refused, however it is spelled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Env, RawClient, dev_gateway, messages, outbox_kinds

pytestmark = [pytest.mark.integration, pytest.mark.soak]

OURS = [
    "dev@lists.test",
    "DEV@LISTS.TEST",
    "Dev@Lists.Test",
    '"dev"@lists.test',
    "dev+subscribe@lists.test",
    "dev+unsubscribe@LISTS.test",
]
# The final mailbox is ours: aiosmtpd refuses a trailing dot as malformed before we see it, and
# strips a source route through someone else to our list (RFC 5321 C: the route is ignored). Either
# answer is safe as long as the mail is stored here and never sent on.
OURS_OR_MALFORMED = [
    "dev@lists.test.",
    "dev+help@lists.test.",
    "@elsewhere.example:dev@lists.test",
    "dev @lists.test",
]
NOT_OURS = [
    "dev@elsewhere.example",
    "dev@lists.test.elsewhere.example",
    "dev@sub.lists.test",
    "dev@lists.test..",
    "dev@lists-test",
    "dev@[127.0.0.1]",
    "dev@lists.test@elsewhere.example",
    "dev%elsewhere.example@lists.test",
    "user%elsewhere.example@lists.test",
    "elsewhere.example!user@lists.test",
    "@lists.test:user@elsewhere.example",
    '"user@elsewhere.example"@lists.test',
    '"dev@elsewhere.example"',
    '"dev"@elsewhere.example',
    "dev",
    "postmaster@elsewhere.example",
    "nosuchlist@lists.test",
    "dev+nonsense@lists.test",
    "dev+confirm@lists.test",
    "dev+bounce@lists.test",
    "dev+bounce-x@lists.test",
    "dev\\@elsewhere.example@lists.test",
    "dev@lists.test\x00.elsewhere.example",
    "dev@xn--lists-test.example",
    "DEV@ELSEWHERE.EXAMPLE",
    "dev@LISTS.TEST.ELSEWHERE.EXAMPLE",
]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A gateway with the list dev@ and no rate limit in the way of the attacks."""
    yield from dev_gateway(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="100000")


def _rcpt(env: Env, address: str) -> str:
    c = RawClient(env.settings.smtp_port)
    try:
        assert c.cmd("EHLO relay-test.example").startswith("250")
        assert c.cmd("MAIL FROM:<spammer@elsewhere.example>").startswith("250")
        reply = c.cmd(f"RCPT TO:<{address}>")
        if reply.startswith("250"):  # accepted: it must then be stored here, never relayed
            assert c.cmd("DATA").startswith("354")
            c.send(
                b"From: spammer@elsewhere.example\r\nSubject: relay?\r\n"
                b"Message-ID: <relay-%d@x>\r\n\r\nhi\r\n.\r\n" % abs(hash(address))
            )
            assert c.reply().startswith("250")
        return reply
    finally:
        c.close()


@pytest.mark.parametrize("address", OURS)
def test_our_addresses_in_any_spelling_are_accepted(env: Env, address: str) -> None:
    assert _rcpt(env, address).startswith("250")


def test_every_other_spelling_is_refused_and_nothing_goes_out(env: Env) -> None:
    accepted = {a: r for a in NOT_OURS if (r := _rcpt(env, a)).startswith(("2", "4"))}
    assert accepted == {}, "open relay or silent acceptance"
    assert messages(env.db) == [] and outbox_kinds(env.db) == []
    assert env.gw is not None and env.gw.enqueued.entries == []


@pytest.mark.parametrize("address", OURS_OR_MALFORMED)
def test_trailing_dot_is_ours_or_refused_never_relayed(env: Env, address: str) -> None:
    reply = _rcpt(env, address)
    assert reply.startswith(("250", "5")), reply
    assert env.gw is not None
    assert all(m.list_id == 1 for m in messages(env.db)) and env.gw.enqueued.kinds() in (
        [],
        ["listgate.fanout"],
        ["listgate.handle_command"],
    )
