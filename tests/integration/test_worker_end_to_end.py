"""End to end: SMTP into the real gateway, its archiver
and broker sender, a real worker, the SMTP sink.
"""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from gateway.broker import BrokerSender
from gateway.handler import GatewayHandler
from gateway.server import GatewayServer
from listgate.archiver import Archiver
from listgate.models import Message, Subscription
from tests.support.config import wait_until
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink
from tests.support.worker import build_site, mail

pytestmark = pytest.mark.integration


def test_post_and_mute_reply_through_the_gateway(tmp_path: Path, sink: SmtpSink) -> None:
    site = build_site(tmp_path, sink)
    site.subscribe("dev", "alice@example.org", "bob@example.org")
    archiver = Archiver(site.settings, site.db, enqueue=BrokerSender(site.settings))
    server = GatewayServer(site.settings, GatewayHandler(site.settings, site.db), archiver=archiver)
    server.start()
    worker = WorkerProcess(site.env, tmp_path / "worker.log").start()
    try:
        with smtplib.SMTP(site.settings.smtp_host, site.settings.smtp_port, timeout=10) as smtp:
            smtp.sendmail(
                "carol@example.net", ["dev@lists.test"], mail("carol@example.net", "Hi", "e2e@x")
            )
        wait_until(lambda: len(sink.received) >= 2, what="the post via the gateway")
        assert sorted(r.rcpt_tos[0] for r in sink.received) == [
            "alice@example.org",
            "bob@example.org",
        ]
        copy = sink.to("bob@example.org")[0]
        # Bob answers his copy ("reply to list": its List-Post) with just "mute": it acts on the
        # thread and is never posted.
        reply = mail("bob@example.org", "Re: Hi", "mute@x", "mute\n", in_reply_to="e2e@x")
        list_post = copy.message["List-Post"].strip("<>").removeprefix("mailto:")
        with smtplib.SMTP(site.settings.smtp_host, site.settings.smtp_port, timeout=10) as smtp:
            smtp.sendmail("bob@example.org", [list_post], reply)
        wait_until(
            lambda: site.count(Subscription, Subscription.kind == "mute") == 1, what="the mute"
        )
        with smtplib.SMTP(site.settings.smtp_host, site.settings.smtp_port, timeout=10) as smtp:
            smtp.sendmail(
                "carol@example.net",
                ["dev@lists.test"],
                mail("carol@example.net", "Re: Hi", "e2e-2@x", "More.\n", in_reply_to="e2e@x"),
            )
        wait_until(
            lambda: len(sink.received) >= 4, what="the mute's confirmation and the second post"
        )
        later = [(r.rcpt_tos[0], r.message["Subject"]) for r in sink.received[2:]]
        assert sorted(later) == [
            ("alice@example.org", "Re: Hi"),
            ("bob@example.org", "Done: your mail from dev"),
        ]
        assert site.count(Message, Message.message_id == "mute@x") == 0
    finally:
        worker.stop()
        server.stop()
