"""The SMTP envelope under attack: 8-bit senders, recipient floods, probing for private lists,
look-alike names.

Each test sends what an attacker sent (issue 17: items 6, 7 and 11) over real SMTP and asserts
the reply a sender sees and what was stored.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from listgate import confirmations, lists, subscriptions
from listgate.db import transaction
from listgate.models import Subscription
from tests.support.factories import subscription_of
from tests.support.gateway import Env, RawClient, mail, messages
from tests.support.reliability import record

pytestmark = [pytest.mark.integration, pytest.mark.soak]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A gateway with the open list dev@ and the private list secret@ (bob is subscribed to it)."""
    e = Env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="1000")
    e.make_list("dev")
    e.make_list("secret", private=True, policy="members", moderators="mod@example.org")
    with transaction(e.db) as s:
        lists.subscribe(s, lists.require(s, "secret"), "bob@example.org")
    e.start()
    yield e
    e.close()


class Client(RawClient):
    """A raw client that keeps the reply to its MAIL FROM."""

    last = ""


def _session(env: Env, mail_from: str, smtputf8: bool = False) -> Client:
    c = Client(env.settings.smtp_port)
    assert c.cmd("EHLO client.example").startswith("250")
    reply = c.cmd(f"MAIL FROM:<{mail_from}>" + (" SMTPUTF8" if smtputf8 else ""))
    c.last = reply
    return c


# --- 17.6: 8-bit MAIL FROM ---------------------------------------------------------------


def test_an_8bit_sender_without_smtputf8_is_refused_at_mail_and_the_session_goes_on(
    env: Env,
) -> None:
    c = _session(env, "jürgen@example.org")
    refused = c.last.startswith("553 5.6.7")
    record("8-bit MAIL FROM without SMTPUTF8", 1, 0, 0, None, c.last, held=int(refused))
    assert refused and "SMTPUTF8" in c.last, c.last
    assert c.cmd("MAIL FROM:<juergen@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
    c.close()


def test_invalid_utf8_in_the_sender_is_refused_even_with_smtputf8(env: Env) -> None:
    c = RawClient(env.settings.smtp_port)
    c.cmd("EHLO client.example")
    c.send(b"MAIL FROM:<j\xfcrgen@example.org> SMTPUTF8\r\n")
    assert c.reply().startswith("553 5.6.7")
    c.close()


def test_an_8bit_sender_with_smtputf8_is_stored(env: Env) -> None:
    with env.smtp() as c:
        c.ehlo()
        refused = c.sendmail(
            "jürgen@example.org",
            ["dev@lists.test"],
            mail(msgid="utf8@example.org", frm="Jürgen <jürgen@example.org>").replace(
                b"J\xfcrgen", "Jürgen".encode()
            ),
            mail_options=["SMTPUTF8"],
        )
    assert refused == {}
    stored = messages(env.db)
    assert [(m.message_id, m.from_addr) for m in stored] == [
        ("utf8@example.org", "jürgen@example.org")
    ]


# --- 17.7: recipients per transaction, limits counted per recipient ------------------------


def test_the_101st_recipient_of_a_transaction_gets_452(env: Env) -> None:
    c = _session(env, "victim@example.org")
    replies = [c.cmd(f"RCPT TO:<dev+confirm-{i:04d}aaaa@lists.test>")[:9] for i in range(150)]
    c.close()
    record(
        "RCPT flood: 150 confirm addresses in one transaction",
        150,
        0,
        0,
        None,
        f"{replies.count('250 2.1.5')} accepted, {replies.count('452 4.5.3')} got 452",
        held=150 if replies.count("250 2.1.5") <= 100 else 0,
    )
    assert replies[:100] == ["250 2.1.5"] * 100
    assert set(replies[100:]) == {"452 4.5.3"}


def test_the_per_minute_limit_counts_recipients_not_only_messages(
    make_env: Callable[..., Env],
) -> None:
    e = make_env(LISTGATE_MAX_MESSAGES_PER_MINUTE="30")
    e.make_list("dev")
    e.start()
    c = _session(e, "ann@example.org")
    replies = [c.cmd(f"RCPT TO:<dev+confirm-{i:04d}aaaa@lists.test>")[:9] for i in range(50)]
    assert replies[:30] == ["250 2.1.5"] * 30 and set(replies[30:]) == {"451 4.7.1"}, replies
    c.cmd("RSET")
    # the minute's budget is spent
    assert c.cmd("MAIL FROM:<ann@example.org>").startswith("451 4.7.1")
    c.close()


# --- 17.11: private lists are not revealed at RCPT -------------------------------------------

PROBES = [
    "secret",
    "secret+subscribe",
    "secret+help",
    "secret+confirm-1.aaaaaaaaaaaa",
    "secret+bounce-d1.0123456789",
]


def _rcpt(env: Env, mail_from: str, local: str) -> str:
    c = _session(env, mail_from)
    reply = c.cmd(f"RCPT TO:<{local}@lists.test>")
    c.close()
    return reply


def test_an_outsider_gets_the_same_answer_for_a_private_list_as_for_no_list(env: Env) -> None:
    same = 0
    for probe in PROBES:
        private = _rcpt(env, "outsider@example.org", probe)
        unknown = _rcpt(env, "outsider@example.org", probe.replace("secret", "nolist"))
        same += private.replace("secret", "nolist") == unknown
        assert private.startswith("550") and private.replace("secret", "nolist") == unknown, (
            private,
            unknown,
        )
    record(
        "RCPT probing a private list's addresses (5 spellings)",
        len(PROBES),
        0,
        0,
        None,
        f"{same} answered exactly like a list that does not exist",
        held=same,
    )


def test_members_and_moderators_of_a_private_list_can_still_post(env: Env) -> None:
    assert _rcpt(env, "bob@example.org", "secret").startswith("250")
    assert _rcpt(env, "MOD@example.org", "secret").startswith("250")
    with env.smtp() as c:
        assert (
            c.sendmail(
                "bob@example.org",
                ["secret@lists.test"],
                mail(msgid="member@example.org", frm="bob@example.org"),
            )
            == {}
        )
    assert [m.message_id for m in messages(env.db, "secret")] == ["member@example.org"]


def test_a_confirmation_reply_reaches_a_private_list_from_the_address_that_asked(env: Env) -> None:
    with transaction(env.db) as s:
        mlist = lists.require(s, "secret")
        outcome = confirmations.request(
            s,
            mlist,
            "carol@example.org",
            secret=env.settings.secret_key,
            base_url="http://x",
            domain="lists.test",
        )
        code = confirmations.confirm_code(env.settings.secret_key, subscription_of(outcome))
    assert _rcpt(env, "carol@example.org", f"secret+confirm-{code}").startswith("250")
    # the code is the proof
    assert _rcpt(env, "outsider@example.org", f"secret+confirm-{code}").startswith("250")
    assert _rcpt(env, "outsider@example.org", "secret+confirm-1.aaaaaaaaaaaa").startswith("550")


def test_a_bounce_to_a_private_list_needs_a_token_of_that_list(env: Env) -> None:
    from listgate.tokens import verp_token

    with env.db() as s:
        sub_id = s.scalar(select(Subscription.id).where(Subscription.address == "bob@example.org"))
    assert sub_id is not None
    token = verp_token(env.settings.secret_key, "s", sub_id)
    assert _rcpt(env, "", f"secret+bounce-{token}").startswith("250")
    assert _rcpt(
        env, "", f"secret+bounce-{verp_token('another-secret-0123456', 's', sub_id)}"
    ).startswith("550")


def test_a_former_member_of_a_private_list_gets_a_strangers_answer(env: Env) -> None:
    """Dave was subscribed and posted, then left: RCPT must not tell him the list still exists."""
    with transaction(env.db) as s:
        lists.subscribe(s, lists.require(s, "secret"), "dave@example.org")
    with env.smtp() as c:
        post = mail(msgid="dave1@example.org", frm="dave@example.org", to="secret@lists.test")
        assert c.sendmail("dave@example.org", ["secret@lists.test"], post) == {}
    assert [m.message_id for m in messages(env.db, "secret")] == ["dave1@example.org"]
    with transaction(env.db) as s:
        left = subscriptions.change(
            s, lists.require(s, "secret"), "dave@example.org", subscriptions.LEAVE, channel="web"
        )
    assert left.message == "dave@example.org has left secret."
    for probe in PROBES:
        former = _rcpt(env, "dave@example.org", probe)
        assert former.startswith("550") and former == _rcpt(env, "outsider@example.org", probe), (
            probe,
            former,
        )
    again = mail(msgid="dave2@example.org", frm="dave@example.org", to="secret@lists.test")
    with env.smtp() as c, pytest.raises(smtplib.SMTPRecipientsRefused):
        c.sendmail("dave@example.org", ["secret@lists.test"], again)
    assert [m.message_id for m in messages(env.db, "secret")] == ["dave1@example.org"]
    assert _rcpt(env, "bob@example.org", "secret").startswith("250")  # bob is still a member
    with transaction(env.db) as s:  # asking to come back makes him known again (pending)
        confirmations.request(
            s,
            lists.require(s, "secret"),
            "dave@example.org",
            secret=env.settings.secret_key,
            base_url="http://x",
            domain="lists.test",
        )
    assert _rcpt(env, "dave@example.org", "secret").startswith("250")


# --- 17.11: look-alike list names --------------------------------------------------------------

LOOK_ALIKES = ["\u212aernel", "ｄｅｖ", "\u217eev", "dev\u200b"]


@pytest.mark.parametrize("local", LOOK_ALIKES)
def test_non_ascii_look_alikes_of_a_list_name_are_refused(env: Env, local: str) -> None:
    env.make_list("kernel")
    with env.smtp() as c:
        c.ehlo()
        c.mail("ann@example.org", ["SMTPUTF8"])
        code, text = c.rcpt(f"{local}@lists.test")
        if local == LOOK_ALIKES[0]:
            record(
                "RCPT to a look-alike list name (U+212A KELVIN SIGN for k)",
                1,
                0,
                0,
                None,
                f"{code} {text.decode()}",
                held=int(code == 550),
            )
        assert code == 550 and b"5.1.1" in text, (local, code, text)
        assert c.rcpt("kernel@lists.test")[0] == 250
    assert messages(env.db) == []


def test_a_look_alike_domain_is_not_ours() -> None:
    from listgate.addresses import parse_recipient

    assert parse_recipient("dev@lists.\u212aernel.org", "lists.kernel.org") is None
    assert parse_recipient("dev@lists.kernel.org", "lists.kernel.org") is not None


def test_smtplib_sees_refusals_as_refusals(env: Env) -> None:
    with env.smtp() as c, pytest.raises(smtplib.SMTPRecipientsRefused):
        c.sendmail("outsider@example.org", ["secret@lists.test"], mail())
