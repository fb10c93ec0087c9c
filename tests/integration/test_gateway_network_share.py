"""One network cannot take every connection the gateway has: its share is answered 421 4.7.0
naming the reason, counted like the other refusals, and a client from another network still
gets its 250 (over real SMTP on loopback: 127.0.0.0/8 is all loopback here, so 127.0.1.0/24 and
127.0.2.0/24 are two networks to the gateway)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from listgate import counters
from tests.support.gateway import Env, RawClient, archived_ids, mail

pytestmark = pytest.mark.integration
LIMIT, PER_CLIENT = 40, 4  # the network's share by default: a quarter of the limit, 10


def _crowd(port: int, network: str, most: int) -> tuple[list[RawClient], str]:
    """Connections from one /24, a client after another, until one is refused (at most `most`):
    those served, and the refusal."""
    served: list[RawClient] = []
    for i in range(most):
        c = RawClient(port, source=f"{network}.{2 + i}")
        if not c.greeting.startswith("220"):
            refusal = c.greeting
            c.close()
            return served, refusal
        served.append(c)
    return served, "<none refused>"


def _post_from(port: int, source: str, msgid: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as c:
        assert c.sendmail("ann@example.org", ["dev@lists.test"], mail(msgid=msgid)) == {}


def test_one_network_gets_its_share_and_another_network_is_served(
    make_env: Callable[..., Env],
) -> None:
    e = make_env(
        LISTGATE_MAX_CONNECTIONS=str(LIMIT), LISTGATE_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT)
    )
    e.make_list("dev")
    e.start()
    port = e.settings.smtp_port
    crowd, refusal = _crowd(port, "127.0.1", LIMIT + 5)
    try:
        assert refusal == (
            "421 4.7.0 Too many connections from your network 127.0.1.0/24 "
            "(its share is 10 of the gateway's 40), try again later"
        ), (len(crowd), refusal)
        assert len(crowd) == LIMIT // 4
        _post_from(port, "127.0.2.2", "other-network@example.org")  # the 250 is the assertion
        again = RawClient(port, source="127.0.1.200")  # the network is still at its share
        assert again.greeting.startswith("421 4.7.0 Too many connections from your network")
        again.close()
        for c in crowd[:3]:  # its share frees as its connections close
            assert c.cmd("QUIT").startswith("221")
            c.close()
        _post_from(port, "127.0.1.201", "same-network-later@example.org")
    finally:
        for c in crowd:
            c.close()
    assert sorted(archived_ids(e.db)) == [
        "other-network@example.org",
        "same-network-later@example.org",
    ]
    e.close()  # counts still waiting are written as the gateway stops
    with e.db() as s:
        assert counters.values(s, counters.REFUSED) == {"network-connections": 2}


def test_a_set_share_and_a_trusted_network_exempt_from_it(make_env: Callable[..., Env]) -> None:
    e = make_env(
        LISTGATE_MAX_CONNECTIONS_PER_NETWORK="2",
        LISTGATE_MAX_CONNECTIONS_PER_CLIENT="1",
        LISTGATE_TRUSTED_MTAS="127.0.3.0/24",
    )
    e.make_list("dev")
    e.start()
    port = e.settings.smtp_port
    opened = [RawClient(port, source=f"127.0.4.{i}") for i in (2, 3, 4)]
    mta = [RawClient(port, source="127.0.3.2") for _ in range(4)]  # the MTA in front: one address
    try:
        assert [c.greeting[:3] for c in opened] == ["220", "220", "421"]
        assert "from your network 127.0.4.0/24 (its share is 2 of" in opened[2].greeting
        assert [c.greeting[:3] for c in mta] == ["220"] * 4
    finally:
        for c in opened + mta:
            c.close()
