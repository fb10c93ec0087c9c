"""What a copy sent comes to, and the Maildir the embedded default delivers into.

Each copy's result is SENT (2xx), DEFERRED (4xx, refused, timeout, dropped connection),
BOUNCED (5xx) or ABANDONED (its claim was lost before the final "."), with the step that got
the reply (a 5xx to RCPT is about the recipient, one to MAIL or after the message usually
about the message: worker/bounces.py decides). worker/relay_sessions.py sends every kind of
mail, over SMTP sessions to the relay or into this Maildir.
"""

from __future__ import annotations

import mailbox
import re
import smtplib
import socket
from dataclasses import dataclass
from pathlib import Path

SENT, DEFERRED, BOUNCED, ABANDONED = "sent", "deferred", "bounced", "abandoned"
MAIL, RCPT, DATA, DOT = (
    "mail",
    "rcpt",
    "data",
    "dot",
)  # the step a reply answered (DOT: the message itself)
TIMEOUT = 60.0
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
TRANSIENT_ERRORS = (
    OSError,
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    socket.timeout,
    EOFError,
)


@dataclass(frozen=True)
class SendResult:
    """What the relay said about one message to one recipient."""

    status: str
    code: int
    detail: str
    stage: str = ""

    @property
    def ok(self) -> bool:
        """True when the relay accepted the message."""
        return self.status == SENT


def classify(code: int, detail: str, stage: str = "") -> SendResult:
    """2xx sent, 5xx bounced, anything else deferred."""
    if 200 <= code < 300:
        return SendResult(SENT, code, detail, stage)
    if 500 <= code < 600:
        return SendResult(BOUNCED, code, detail, stage)
    return SendResult(DEFERRED, code, detail, stage)


def crlf(data: bytes) -> bytes:
    """The message with every line ending as CRLF (SMTP's wire form)."""
    return _BARE_LF.sub(b"\r\n", _BARE_CR.sub(b"\r\n", data))


class MaildirConnection:
    """Deliver into a Maildir (the embedded default): every message lands, envelope on top."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(path, create=True)

    def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult:
        """Write one file (atomic: tmp/ then rename into new/)."""
        envelope = f"Return-Path: <{mail_from}>\nDelivered-To: {rcpt}\n".encode()
        try:
            key = self.box.add(envelope + data.replace(b"\r\n", b"\n"))
        except OSError as exc:
            return SendResult(DEFERRED, 0, f"maildir: {exc}")
        return SendResult(SENT, 250, f"maildir {key}")

    def close(self) -> None:
        """Nothing to close."""


def maildir_path(outbound: str) -> Path:
    """The directory of a maildir:/path setting."""
    rest = outbound.split(":", 1)[1]
    return Path(rest.removeprefix("//"))
