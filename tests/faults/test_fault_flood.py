"""64 connections from one address: per-client limits
apply; another client's post is accepted meanwhile.
"""

from __future__ import annotations

import select
import smtplib
import time
from pathlib import Path

import pytest

from tests.support.config import prepare, site_env
from tests.support.gateway import RawClient, archived_ids
from tests.support.processes import gateway
from tests.support.reliability import post, record

pytestmark = [pytest.mark.integration, pytest.mark.soak]
FLOOD = 64


def test_flood_from_one_address_is_limited_and_others_are_served(tmp_path: Path) -> None:
    # default 16 connections per client
    env = site_env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="30")
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    port = settings.smtp_port
    flood: list[RawClient] = []
    try:
        flood = [RawClient(port, source="127.0.0.1") for _ in range(FLOOD)]
        greetings = [c.greeting for c in flood]
        served = [c for c in flood if c.greeting.startswith("220")]
        refused = [g for g in greetings if g.startswith("421")]
        assert len(served) == settings.max_connections_per_client == 16
        assert len(refused) == FLOOD - 16
        assert all("4.7.0 Too many connections from 127.0.0.1 (limit 16)" in g for g in refused)
        assert all(c.cmd("EHLO flood.example").startswith("250") for c in served)

        # the held-open flood connections pump messages:
        # the per-minute limit answers 451 with a reason
        codes = []
        for i in range(40):
            c = served[i % len(served)]
            reply = c.cmd("MAIL FROM:<flood@example.org>")
            codes.append(reply[:3])
            if reply.startswith("250"):
                assert c.cmd("RCPT TO:<dev@lists.test>").startswith("250")
                assert c.cmd("DATA").startswith("354")
                c.send(post(f"flood{i}@example.org").replace(b"\r\n.", b"\r\n..") + b".\r\n")
                assert c.reply().startswith("250")
            else:
                assert (
                    "451 4.7.1 Too many messages from 127.0.0.1" in reply and "per minute" in reply
                )
                c.cmd("RSET")
        assert codes.count("250") == 30 and codes.count("451") == 10

        # meanwhile, with the flood still open, another client's post is accepted
        with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0)) as other:
            assert (
                other.sendmail("bob@example.org", ["dev@lists.test"], post("other@example.org"))
                == {}
            )
        # the flood was held open throughout
        assert all(c.cmd("NOOP").startswith("250") for c in served)
    finally:
        for c in flood:
            c.close()
        gw.stop()
    stored = archived_ids(db)
    assert "other@example.org" in stored and len(stored) == 31
    assert "refused a connection from 127.0.0.1" in gw.text()
    record(
        f"flood: {FLOOD} connections from one address",
        FLOOD,
        0,
        0,
        None,
        "16 served, 48 got 421; 451 over 30/min; another client accepted meanwhile",
    )


def test_slowloris_is_cut_off_by_the_server_timeout_and_others_are_served(tmp_path: Path) -> None:
    env = site_env(tmp_path, LISTGATE_SMTP_TIMEOUT="2")
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    port = settings.smtp_port
    try:
        idle = RawClient(port, source="127.0.0.1")  # says nothing after the greeting
        slow = RawClient(port, source="127.0.0.1")
        assert slow.cmd("EHLO slow.example").startswith("250")
        assert slow.cmd("MAIL FROM:<slow@example.org>").startswith("250")
        assert slow.cmd("RCPT TO:<dev@lists.test>").startswith("250")
        assert slow.cmd("DATA").startswith("354")
        started, reply = time.monotonic(), ""
        for _ in range(100):  # one byte every 0.1 s: never a whole message within the 2 s timeout
            if select.select([slow.sock], [], [], 0)[0]:
                reply = slow.reply()
                break
            slow.send(b"x")
            time.sleep(0.1)
        assert reply.startswith("421 4.4.2"), "the server let a slowloris DATA run past its timeout"
        assert time.monotonic() - started < 10
        assert idle.reply().startswith("421 4.4.2")
        assert idle.reply() == "<closed>"
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as other:
            assert (
                other.sendmail("bob@example.org", ["dev@lists.test"], post("other@example.org"))
                == {}
            )
        idle.close()
        slow.close()
    finally:
        gw.stop()
    assert archived_ids(db) == ["other@example.org"]
