"""parse_recipient: which envelope addresses are ours."""

from __future__ import annotations

import pytest

from listgate.addresses import Recipient, ascii_reading, eight_bit_problem, parse_recipient


@pytest.mark.parametrize(
    "address,expected",
    [
        ("dev@lists.test", Recipient("dev")),
        ("<DEV@Lists.Test.>", Recipient("dev")),
        ('"dev"@lists.test', Recipient("dev")),
        ("dev+subscribe@lists.test", Recipient("dev", "subscribe")),
        ("dev+unsubscribe@lists.test", Recipient("dev", "unsubscribe")),
        ("dev+help@lists.test", Recipient("dev", "help")),
        ("dev+confirm-abc123@lists.test", Recipient("dev", "confirm", "abc123")),
        ("dev+bounce-tok.en_1=x@lists.test", Recipient("dev", "bounce", "tok.en_1=x")),
        ("dev@other.test", None),
        ("dev@sub.lists.test", None),
        ("@relay.example:dev@lists.test", None),
        ("dev%other.test@lists.test", None),
        ("host!dev@lists.test", None),
        ("dev+subscribe-extra@lists.test", None),
        ("dev+confirm@lists.test", None),
        ("dev+confirm-x@lists.test", None),
        ("dev+nonsense@lists.test", None),
        ("-dev@lists.test", None),
        ('"dev list"@lists.test', None),
        ("", None),
        ("dev", None),
    ],
)
def test_parse_recipient(address: str, expected: Recipient | None) -> None:
    assert parse_recipient(address, "lists.test") == expected


def test_a_recipient_prints_back_as_its_address() -> None:
    assert (
        Recipient("dev", "confirm", "abc123").address("lists.test")
        == "dev+confirm-abc123@lists.test"
    )
    assert Recipient("dev").address("lists.test") == "dev@lists.test"


@pytest.mark.parametrize(
    "address",
    [
        "\u212aernel@lists.test",
        "kernel@lists.tes\u0165",
        "ｋernel@lists.test",
        "kernel\u200b@lists.test",
    ],
)
def test_non_ascii_look_alikes_are_never_our_addresses(address: str) -> None:
    assert parse_recipient(address, "lists.test") is None
    assert parse_recipient("kernel@lists.test", "lists.test") == Recipient("kernel")


def test_ascii_reading_shows_what_a_look_alike_imitates() -> None:
    assert ascii_reading("\u212aernel@lists.test") == "kernel@lists.test"
    assert ascii_reading("ｄｅｖ@lists.test") == "dev@lists.test"


@pytest.mark.parametrize(
    ("address", "options", "refused"),
    [
        ("ann@example.org", [], False),
        ("", [], False),  # the null sender
        ("jürgen@example.org", [], True),
        ("jürgen@example.org", ["BODY=8BITMIME", "SMTPUTF8"], False),
        (
            "j\udcfcrgen@example.org",
            ["SMTPUTF8"],
            True,
        ),  # \xfc, not UTF-8: aiosmtpd's surrogate escape
    ],
)
def test_eight_bit_senders_need_smtputf8_and_valid_utf8(
    address: str, options: list[str], refused: bool
) -> None:
    problem = eight_bit_problem(address, options)
    assert bool(problem) == refused and (not problem or problem.startswith("553 5.6.7"))
