"""parse_recipient: which envelope addresses are ours."""

from __future__ import annotations

import pytest

from listgate.addresses import Recipient, parse_recipient


@pytest.mark.parametrize("address,expected", [
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
])
def test_parse_recipient(address: str, expected: Recipient | None) -> None:
    assert parse_recipient(address, "lists.test") == expected


def test_a_recipient_prints_back_as_its_address() -> None:
    assert Recipient("dev", "confirm", "abc123").address("lists.test") == "dev+confirm-abc123@lists.test"
    assert Recipient("dev").address("lists.test") == "dev@lists.test"
