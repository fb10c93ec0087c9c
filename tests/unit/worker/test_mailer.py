"""Outbound classification and the wire's line endings."""

from __future__ import annotations

from worker.mailer import BOUNCED, DEFERRED, SENT, classify, crlf


def test_reply_codes_are_classified() -> None:
    assert classify(250, "ok").status == SENT
    assert classify(451, "later").status == DEFERRED
    assert classify(550, "no such user").status == BOUNCED


def test_crlf_normalises_line_endings() -> None:
    assert crlf(b"a\nb\r\nc\rd") == b"a\r\nb\r\nc\r\nd"
