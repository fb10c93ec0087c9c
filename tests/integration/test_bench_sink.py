"""The fan-out benchmark's counting relay speaks enough SMTP for smtplib and the worker's waves."""

from __future__ import annotations

import smtplib
import socket

from bench.sink import Sink
from tests.support.config import free_port


def test_sink_counts_each_message_once_with_its_recipients() -> None:
    sink = Sink(free_port())
    sink.start()
    try:
        with smtplib.SMTP("127.0.0.1", sink.port) as client:
            client.ehlo()
            assert "pipelining" in client.esmtp_features
            client.sendmail(
                "a@example.org",
                ["b@example.org", "c@example.org"],
                b"Subject: one\r\n\r\n.a line that starts with a dot\r\n\r\n.\r\nmore\r\n",
            )
            client.sendmail("a@example.org", ["b@example.org"], b"")
            refused = client.docmd("VRFY", "b@example.org")
        assert (sink.tally.count, sink.tally.recipients) == (2, 3)
        assert refused[0] == 502
    finally:
        sink.stop()


def test_sink_answers_pipelined_commands_in_order_across_split_writes() -> None:
    sink = Sink(free_port())
    sink.start()
    try:
        with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as conn:
            stream = conn.makefile("rb")
            assert stream.readline().startswith(b"220")
            script = (
                b"HELO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: s\r\n\r\n"
                b"body\r\n.\r\nQUIT\r\n"
            )
            for i in range(0, len(script), 7):  # the terminator arrives cut in pieces
                conn.sendall(script[i : i + 7])
            codes = [stream.readline()[:3] for _ in range(6)]
        assert codes == [b"250", b"250", b"250", b"354", b"250", b"221"]
        assert sink.tally.count == 1
    finally:
        sink.stop()
