"""Per-client limits (connections, messages per minute), without sockets."""

from __future__ import annotations

from gateway.limits import ClientLimits, trusted_networks


def test_connections_per_client_are_bounded_and_released() -> None:
    limits = ClientLimits(max_connections=2, max_per_minute=10)
    assert limits.connect("10.0.0.1") and limits.connect("10.0.0.1")
    assert not limits.connect("10.0.0.1")
    assert limits.connect("10.0.0.2")  # another client is unaffected
    limits.disconnect("10.0.0.1")
    assert limits.connections("10.0.0.1") == 1 and limits.connect("10.0.0.1")


def test_messages_per_minute_slide() -> None:
    now = [1000.0]
    limits = ClientLimits(max_connections=2, max_per_minute=3, clock=lambda: now[0])
    assert all(limits.allow_message("a") for _ in range(3))
    assert not limits.allow_message("a") and limits.allow_message("b")
    now[0] += 61
    assert limits.allow_message("a")


def test_trusted_networks_are_exempt_from_every_per_client_limit() -> None:
    limits = ClientLimits(
        max_connections=1, max_per_minute=1, trusted=["127.0.0.0/8", "2001:db8::/32"]
    )
    for client in ("127.0.0.1", "127.5.5.5", "::ffff:127.0.0.1", "2001:db8::25"):
        assert all(limits.connect(client) for _ in range(5)), client
        assert all(limits.allow_message(client) for _ in range(5)), client
        limits.disconnect(client)
    assert limits.connect("10.1.1.1") and not limits.connect("10.1.1.1")
    assert limits.allow_message("not-an-address") and not limits.allow_message("not-an-address")


def test_loopback_is_trusted_by_default_only_in_lmtp_mode() -> None:
    assert trusted_networks(None, lmtp=True) == ("127.0.0.0/8", "::1/128")
    assert trusted_networks(None, lmtp=False) == ()
    assert trusted_networks(("192.0.2.7/32",), lmtp=True) == ("192.0.2.7/32",)
    assert trusted_networks((), lmtp=True) == ()  # LISTGATE_TRUSTED_MTAS=none
