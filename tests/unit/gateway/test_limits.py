"""Connection limits (the gateway's, each client's) and messages per minute, without sockets."""

from __future__ import annotations

import resource

import pytest

from gateway.limits import (
    CONNECTION_COST,
    RESERVED_FDS,
    ClientLimits,
    connection_limit,
    network_limit,
    network_of,
    trusted_networks,
)

MB = 1024 * 1024


def test_connections_per_client_are_bounded_and_released() -> None:
    limits = ClientLimits(max_connections=2, max_per_minute=10)
    assert limits.connect("10.0.0.1") == limits.connect("10.0.0.1") == ""
    assert limits.connect("10.0.0.1") == "client-connections"
    assert limits.connect("10.0.0.2") == ""  # another client is unaffected
    limits.disconnect("10.0.0.1")
    assert limits.connections("10.0.0.1") == 1 and limits.connect("10.0.0.1") == ""


def test_connections_of_all_clients_are_bounded_and_released() -> None:
    limits = ClientLimits(
        max_connections=2, max_per_minute=10, max_total=3, trusted=["10.9.0.0/16"]
    )
    assert [limits.connect(c) for c in ("10.0.0.1", "10.0.0.2", "10.0.0.3")] == ["", "", ""]
    assert limits.connect("10.0.0.4") == "too-many-connections"
    assert limits.connect("10.0.0.1") == "too-many-connections"  # the gateway's limit first
    # a trusted MTA and a unix socket peer are counted, never refused
    assert limits.connect("10.9.1.1") == limits.connect("") == ""
    assert limits.total == 5 and limits.connections("10.0.0.4") == 0
    for client in ("10.9.1.1", "", "10.0.0.2"):
        limits.disconnect(client)
    assert limits.total == 2 and limits.connect("10.0.0.4") == ""
    assert limits.connect("10.0.0.5") == "too-many-connections"


def test_the_log_line_of_a_full_gateway_comes_at_most_once_a_minute() -> None:
    now = [500.0]
    limits = ClientLimits(max_connections=2, max_per_minute=10, clock=lambda: now[0])
    assert limits.noted("full") and not limits.noted("full")
    assert limits.noted("10.0.0.0/24")  # each network's refusals: a line of their own
    now[0] += 59
    assert not limits.noted("full")
    now[0] += 2
    assert limits.noted("full")


def test_a_network_gets_its_share_others_and_trusted_mtas_are_served() -> None:
    limits = ClientLimits(
        max_connections=2,
        max_per_minute=10,
        max_total=8,
        max_per_network=3,
        trusted=["10.9.0.0/16"],
    )
    assert [limits.connect(c) for c in ("10.0.0.1", "10.0.0.1", "10.0.0.200")] == ["", "", ""]
    assert limits.connect("10.0.0.7") == "network-connections"  # a fresh address, same /24
    assert limits.connect("10.0.0.1") == "client-connections"  # the client's own limit first
    assert limits.connect("10.0.1.1") == ""  # the next /24 is another network
    assert [limits.connect("10.9.0.1") for _ in range(3)] == ["", "", ""]  # trusted: exempt
    assert limits.networks("10.0.0.99") == 3 and limits.connections("10.0.0.7") == 0
    limits.disconnect("10.0.0.200")
    assert limits.connect("10.0.0.7") == "" and limits.connect("10.0.0.8") == "network-connections"
    for client in ("10.0.0.1", "10.0.0.1", "10.0.0.7", "10.0.1.1"):
        limits.disconnect(client)
    assert limits.networks("10.0.0.1") == limits.networks("10.0.1.1") == 0
    assert limits._open == {} and limits._networks == {}  # nothing left behind by the refused


def test_a_network_is_an_ipv4_24_or_an_ipv6_64() -> None:
    assert network_of("192.0.2.77") == "192.0.2.0/24"
    assert network_of("::ffff:192.0.2.77") == "192.0.2.0/24"  # mapped: the IPv4 network
    assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert network_of("") == "" and network_of("not an address") == "not an address"
    limits = ClientLimits(max_connections=9, max_per_minute=9, max_per_network=1)
    assert limits.connect("2001:db8::1") == ""
    assert limits.connect("2001:db8::2:1") == "network-connections"
    assert limits.connect("2001:db8:0:1::1") == ""


def test_the_default_share_is_a_quarter_never_less_than_one_client() -> None:
    assert network_limit(0, 682, 16) == 170
    assert network_limit(0, 40, 16) == 16  # a network of one client: what one client may open
    assert network_limit(0, 2, 0) == 1
    assert network_limit(5, 682, 16) == 5  # set: as set


def test_the_default_limit_follows_the_memory_budget_and_the_fds() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_limit(50, 256 * MB) == 50  # set: as set
    assert connection_limit(0, 64 * MB) == min(64 * MB // CONNECTION_COST, soft - RESERVED_FDS)
    assert connection_limit(0, 256 * MB, files=1024) == 682  # the default budget, ulimit -n 1024
    assert connection_limit(0, 256 * MB, files=RESERVED_FDS + 40) == 40
    assert connection_limit(0, 16 * MB, files=1024) == 100  # a small budget: still 100
    assert connection_limit(0, 256 * MB, files=100) == 1  # never none


def test_a_limit_over_the_fds_is_kept_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert connection_limit(2000, 256 * MB, files=1024) == 2000
    assert "LISTGATE_MAX_CONNECTIONS=2000: more than the 832 file descriptors" in caplog.text


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
        assert all(limits.connect(client) == "" for _ in range(5)), client
        assert all(limits.allow_message(client) for _ in range(5)), client
        limits.disconnect(client)
    assert limits.connect("10.1.1.1") == "" and limits.connect("10.1.1.1") == "client-connections"
    assert limits.allow_message("not-an-address") and not limits.allow_message("not-an-address")


def test_loopback_is_trusted_by_default_only_in_lmtp_mode() -> None:
    assert trusted_networks(None, lmtp=True) == ("127.0.0.0/8", "::1/128")
    assert trusted_networks(None, lmtp=False) == ()
    assert trusted_networks(("192.0.2.7/32",), lmtp=True) == ("192.0.2.7/32",)
    assert trusted_networks((), lmtp=True) == ()  # LISTGATE_TRUSTED_MTAS=none
