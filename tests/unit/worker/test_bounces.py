"""Real bounces from many MTAs: permanent failures vs. delay warnings, and who failed."""

from __future__ import annotations

import pytest

from listgate.states import BounceKind
from tests.support.config import DATA as TEST_DATA
from tests.support.corpora import corpus
from worker.bounces import blames_recipient, parse_bounce, refusal_kind
from worker.mailer import DATA as DATA_STAGE
from worker.mailer import DOT, MAIL, RCPT, classify

DATA = TEST_DATA / "bounces"  # the ones named below; the whole collection is in the corpora
# Delay warnings (DSN Action: delayed, or "will keep trying" notices): these must never count.
WARNINGS = [
    "dsn_05",
    "dsn_06",
    "dsn_07",
    "dsn_08",
    "dsn_17",
    "simple_03",
    "simple_21",
    "simple_28",
    "simple_35",
    "simple_40",
]
FAILED = {
    "dsn_10": "anne.person@dom.ain",
    "dsn_11": "joem@example.com",
    "dsn_14": "userx@example.com.dk",
    "dsn_18": "email@replaced.net",
    "postfix_01": "xxxxx@local.ie",
    "postfix_03": "ttttt@ggggg.com",
    "exim_01": "userx@its.example.nl",
    "qmail_01": "userx@example.de",
    "qmail_06": "ntl@xxx.com",
    "yahoo_11": "bad_user@aol.com",
    "smtp32_06": "absolute_garbage_addr@example.net",
    "simple_01": "bbbsss@example.com",
    "simple_27": "userx@example.net.py",
    "newmailru_01": "zzzzz@newmail.ru",
}


@pytest.mark.parametrize("name", WARNINGS)
def test_delay_warnings_are_delayed(name: str) -> None:
    assert parse_bounce((DATA / f"{name}.txt").read_bytes()).kind == BounceKind.DELAYED


@pytest.mark.parametrize("name,address", sorted(FAILED.items()))
def test_failures_are_permanent_and_name_the_recipient(name: str, address: str) -> None:
    report = parse_bounce((DATA / f"{name}.txt").read_bytes())
    assert report.kind in (BounceKind.PERMANENT, BounceKind.TRANSIENT)
    assert address in [a.lower() for a in report.recipients]


def test_whole_corpus_parses_without_error_and_mostly_classifies() -> None:
    files = sorted(corpus("bounces", "data").glob("*.txt"))
    assert len(files) >= 100
    kinds = [parse_bounce(f.read_bytes()).kind for f in files]
    assert kinds.count(BounceKind.PERMANENT) + kinds.count(BounceKind.TRANSIENT) >= 90
    assert kinds.count(BounceKind.DELAYED) >= len(WARNINGS)


# Who is at fault: a subscriber is scored only for failures of their own address or mailbox.


def dsn(recipient: str, status: str, diagnostic: str, original: str = "") -> bytes:
    """A DSN (RFC 3464) as a relay writes it after the next hop refused a copy."""
    orig = f"Original-Recipient: rfc822;{original}\r\n" if original else ""
    return (
        "From: MAILER-DAEMON@relay.example\r\nTo: dev+bounce-x@lists.test\r\n"
        "Subject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example\r\n\r\n"
        f"{orig}Final-Recipient: rfc822;{recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--B--\r\n"
    ).encode()


@pytest.mark.parametrize("name,address", sorted(FAILED.items()))
def test_real_failures_of_dead_addresses_count_against_them(name: str, address: str) -> None:
    assert parse_bounce((DATA / f"{name}.txt").read_bytes()).blames(address)


def test_a_spam_refusal_naming_the_recipient_counts_against_nobody() -> None:
    report = parse_bounce((DATA / "simple_42.txt").read_bytes())
    assert (
        report.kind == BounceKind.PERMANENT
        and report.recipients
        and not any(report.blames(a) for a in report.recipients)
    )


@pytest.mark.parametrize(
    "status,diagnostic",
    [
        ("5.6.0", "554 5.6.0 Message has lines too long for transport"),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed maximum message size"),
        ("5.7.1", "550 5.7.1 Message rejected as spam by the content filter"),
        ("5.2.3", "552 5.2.3 Message length exceeds administrative limit"),
        ("5.0.0", "500 Line too long"),
        ("5.0.0", "554 Transaction failed: message header too long"),
        ("5.1.8", "553 5.1.8 Sender address rejected: domain not found"),
    ],
)
def test_a_dsn_of_a_refused_message_does_not_blame_its_recipient(
    status: str, diagnostic: str
) -> None:
    report = parse_bounce(dsn("ann@example.org", status, diagnostic))
    assert report.kind == BounceKind.PERMANENT and report.recipients == ("ann@example.org",)
    assert not report.blames("ann@example.org")


@pytest.mark.parametrize(
    "status,diagnostic",
    [
        ("5.1.1", "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown"),
        ("5.2.1", "550 5.2.1 Mailbox disabled"),
        ("5.2.2", "552 5.2.2 Mailbox full"),
        ("5.4.4", "Host or domain name not found"),
        ("5.0.0", "550 User unknown"),
        ("5.0.0", "550 Requested action not taken"),
        ("5.3.0", "553 5.3.0 <ann@example.org>... Addressee unknown"),
    ],
)
def test_a_dsn_of_a_dead_address_blames_its_recipient(status: str, diagnostic: str) -> None:
    report = parse_bounce(dsn("ann@example.org", status, diagnostic))
    assert report.blames("ann@example.org") and report.blames("ANN@example.org")
    assert not report.blames("bob@example.org")  # a DSN naming someone else is not bob's bounce


def test_a_dsn_for_a_forwarded_address_blames_the_subscriber_by_original_recipient() -> None:
    report = parse_bounce(
        dsn("ann@new.example", "5.1.1", "550 5.1.1 no such user", original="ann@example.org")
    )
    assert report.blames("ann@example.org") and report.blames("ann@new.example")


@pytest.mark.parametrize(
    "stage,reply,kind",
    [
        (RCPT, "550 5.1.1 <ann@example.org>: Recipient address rejected", BounceKind.PERMANENT),
        (
            RCPT,
            "554 5.7.1 Relay access denied",
            BounceKind.PERMANENT,
        ),  # refused at RCPT: always theirs (RFC 5321)
        (MAIL, "553 5.1.8 Sender address rejected", BounceKind.REFUSED),
        (DATA_STAGE, "554 5.5.1 No valid recipients", BounceKind.REFUSED),
        (DOT, "500 Line too long (see RFC5321 4.5.3.1.6)", BounceKind.REFUSED),
        (DOT, "552 5.3.4 Message size exceeds fixed limit", BounceKind.REFUSED),
        (
            DOT,
            "554 Transaction failed",
            BounceKind.REFUSED,
        ),  # says nothing about anyone: not held against anyone
        (DOT, "550 5.1.1 no such user", BounceKind.PERMANENT),
        (DOT, "552 5.2.2 Mailbox full", BounceKind.PERMANENT),
        (DOT, "550 Requested action not taken: mailbox unavailable", BounceKind.PERMANENT),
    ],
)
def test_a_relay_reply_counts_against_the_recipient_only_when_it_is_theirs(
    stage: str, reply: str, kind: str
) -> None:
    code, _, text = reply.partition(" ")
    assert refusal_kind(classify(int(code), text, stage)) == kind


def test_a_status_code_in_another_scripts_digits_is_no_status_code() -> None:
    """ "5.٧.١" is not RFC 3463's 5.7.1 (the message's): with no code the words decide."""
    text = "550 {} <ann@example.org>: Recipient address rejected: user unknown"
    for code in ("5.٧.١", "５.７.１", "5.७.१"):
        assert blames_recipient(code, text.format(code), named=False), code
    assert not blames_recipient("5.7.1", text.format("5.7.1"), named=False)
