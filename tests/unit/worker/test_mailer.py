"""Outbound classification and the Maildir channel (the embedded default)."""

from __future__ import annotations

import mailbox
from pathlib import Path

from worker.mailer import (
    BOUNCED,
    DEFERRED,
    SENT,
    SmtpConnection,
    classify,
    connect,
    crlf,
)


def test_reply_codes_are_classified() -> None:
    assert classify(250, "ok").status == SENT
    assert classify(451, "later").status == DEFERRED
    assert classify(550, "no such user").status == BOUNCED


def test_crlf_normalises_line_endings() -> None:
    assert crlf(b"a\nb\r\nc\rd") == b"a\r\nb\r\nc\r\nd"


def test_maildir_delivery_keeps_the_message_and_the_envelope(tmp_path: Path) -> None:
    with connect(f"maildir:{tmp_path / 'out'}") as conn:
        result = conn.send(
            "dev+bounce-x@lists.test", "ann@example.org", b"Subject: hi\r\n\r\nbody\r\n"
        )
    assert result.ok
    (only,) = list(mailbox.Maildir(tmp_path / "out"))
    assert only["Delivered-To"] == "ann@example.org" and only["Subject"] == "hi"
    assert only.get_payload() == "body\n"


def test_refused_connection_is_deferred_not_raised() -> None:
    from tests.support.config import free_port

    conn = SmtpConnection(f"smtp://127.0.0.1:{free_port()}", timeout=2)
    result = conn.send("", "ann@example.org", b"Subject: x\r\n\r\ny\r\n")
    assert result.status == DEFERRED and result.code == 0
