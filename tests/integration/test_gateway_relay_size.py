"""The gateway's size limit follows the outbound relay's EHLO SIZE (never above its own setting),
so it refuses at once what the relay would refuse for every subscriber later; and a legitimate
post with long lines goes in by SMTP and comes out of a strict relay, whole, once per subscriber."""

from __future__ import annotations

import base64
import smtplib
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from gateway.broker import BrokerSender
from gateway.handler import GatewayHandler
from gateway.relaysize import HEADROOM
from gateway.server import GatewayServer
from listgate.archiver import Archiver
from tests.support.config import free_port, wait_until
from tests.support.processes import WorkerProcess
from tests.support.sink import SmtpSink
from tests.support.worker import build_site

pytestmark = pytest.mark.integration


def ehlo_size(port: int) -> int:
    """The SIZE the gateway advertises now."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo()
        return int(smtp.esmtp_features["size"])


def post(
    sender: str, msgid: str, attachment: bytes, html_line: int = 0, one_line: bool = True
) -> bytes:
    """A post with an attachment written as one long
    base64 line (as some clients do), and maybe long HTML.
    """
    html = (
        (
            b"--B\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n<p>" + b"x" * html_line + b"</p>\r\n"
        )
        if html_line
        else b""
    )
    return (
        (
            f"From: {sender}\r\nTo: dev@lists.test\r\nSubject: Post {msgid}\r\n"
            f"Message-ID: <{msgid}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n"
        ).encode()
        + html
        + (
            b"--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + (
                base64.b64encode(attachment)
                if one_line
                else base64.encodebytes(attachment).replace(b"\n", b"\r\n")
            )
            + b"\r\n--B--\r\n"
        )
    )


@pytest.fixture
def relay() -> Iterator[SmtpSink]:
    """A strict relay accepting messages up to 200,000 bytes (its EHLO says SIZE 200000)."""
    sink = SmtpSink(port=free_port(), data_size_limit=200_000)
    sink.start()
    yield sink
    if sink.controller.loop.is_running():
        sink.stop()


def test_the_size_limit_follows_the_relay_and_long_lines_get_through(
    tmp_path: Path, relay: SmtpSink
) -> None:
    site = build_site(tmp_path, relay)
    site.subscribe("dev", "alice@example.org", "bob@example.org")
    server = GatewayServer(
        site.settings,
        GatewayHandler(site.settings, site.db),
        size_check_every=0.2,
        archiver=Archiver(site.settings, site.db, enqueue=BrokerSender(site.settings)),
    )
    server.start()
    worker = WorkerProcess(site.env, tmp_path / "worker.log").start()
    port = site.settings.smtp_port
    try:
        # not the configured 25 MB: the relay takes no more
        assert ehlo_size(port) == 200_000 - HEADROOM
        # ~240 KB
        too_big = post("carol@example.net", "big@x", bytes(range(256)) * 700, one_line=False)
        with (
            smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp,
            pytest.raises(smtplib.SMTPResponseException) as refused,
        ):
            smtp.sendmail("carol@example.net", ["dev@lists.test"], too_big)
        assert refused.value.smtp_code == 552 and b"too big" in refused.value.smtp_error
        # ~110 KB, long lines
        fits = post("carol@example.net", "fits@x", bytes(range(256)) * 250, html_line=20_000)
        assert max(map(len, fits.splitlines())) > 20_000
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            assert smtp.sendmail("carol@example.net", ["dev@lists.test"], fits) == {}
        wait_until(lambda: len(relay.received) >= 2, what="the copies")
        assert Counter(r.rcpt_tos[0] for r in relay.received) == {
            "alice@example.org": 1,
            "bob@example.org": 1,
        }
        sent = message_from_bytes(fits, policy=policy.default)
        for copy in relay.received:
            assert max(map(len, copy.data.splitlines())) <= 998
            got = message_from_bytes(copy.data, policy=policy.default)
            assert [p.get_payload(decode=True) for p in got.walk() if not p.is_multipart()] == [
                p.get_payload(decode=True) for p in sent.walk() if not p.is_multipart()
            ]
        # The relay is replaced by one with a smaller limit: the gateway follows at its next check.
        relay.stop()
        smaller = SmtpSink(port=relay.port, data_size_limit=100_000)
        smaller.start()
        try:
            wait_until(
                lambda: ehlo_size(port) == 100_000 - HEADROOM, timeout=20, what="the new limit"
            )
        finally:
            smaller.stop()
        # The relay unreachable: the last limit it stated still holds.
        server.size_limit.check()
        assert ehlo_size(port) == 100_000 - HEADROOM
    finally:
        worker.stop()
        server.stop()


def test_the_gateway_never_advertises_more_than_its_own_setting(
    tmp_path: Path, relay: SmtpSink
) -> None:
    site = build_site(tmp_path, relay, LISTGATE_MAX_MESSAGE_SIZE="50000")
    server = GatewayServer(site.settings, GatewayHandler(site.settings, site.db))
    server.start()
    try:
        assert ehlo_size(site.settings.smtp_port) == 50_000
    finally:
        server.stop()


@pytest.mark.parametrize(("said", "read"), [(b"SIZE 300000", 300_000), (b"SIZE \xb2", 0)])
def test_a_relay_size_that_is_no_ascii_number_is_no_limit(said: bytes, read: int) -> None:
    """A relay whose EHLO says SIZE ² (a digit to str.isdigit(), not to int()) states no limit:
    the probe answers 0 instead of raising."""
    import socketserver
    import threading

    from listgate.outbound import advertised_size

    class Relay(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220 relay ESMTP\r\n")
            for line in self.rfile:
                verb = line[:4].upper()
                self.wfile.write(b"250-relay\r\n250 " + said + b"\r\n" if verb == b"EHLO" else b"")
                self.wfile.write(b"221 bye\r\n" if verb == b"QUIT" else b"")
                if verb == b"QUIT":
                    return

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            assert advertised_size(f"smtp://127.0.0.1:{server.server_address[1]}") == read
        finally:
            server.shutdown()
