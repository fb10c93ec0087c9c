"""Outbound mail: one connection per batch to an SMTP relay, or a Maildir for the embedded default.

Each send reports SENT (2xx), DEFERRED (4xx, refused, timeout, dropped connection) or
BOUNCED (5xx), with the step that got the reply (a 5xx to RCPT is about the recipient, one to
MAIL or after the message usually about the message: worker/bounces.py decides). For a
fan-out, worker/relay_sessions.py drives several SMTP sessions in lock-step and records,
before each final ".", that the relay may now have the copy (a copy whose claim was lost is
ABANDONED: its session is dropped before the ".").
"""

from __future__ import annotations

import logging
import mailbox
import re
import smtplib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from listgate.outbound import open_session

log = logging.getLogger(__name__)

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
_LEADING_DOT = re.compile(rb"(?m)^\.")
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


class Connection(Protocol):
    """An open outbound channel."""

    def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult: ...


class SmtpConnection:
    """One SMTP session reused for many transactions; reconnects after a drop."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def session(self) -> smtplib.SMTP:
        """The open SMTP session, opened (EHLO, STARTTLS, AUTH) when needed.

        worker/relay_sessions.py drives it.
        """
        if self._smtp is None:
            self._smtp = open_session(self.url, self.timeout)
        return self._smtp

    def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult:
        """One SMTP transaction; transient network errors become DEFERRED."""
        try:
            return self._transaction(self.session(), mail_from, rcpt, data)
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            return SendResult(
                DEFERRED, exc.smtp_code, f"relay refused our login: {exc.smtp_error!r}"
            )
        except smtplib.SMTPResponseException as exc:
            self.close()
            return classify(exc.smtp_code, str(exc.smtp_error))
        except (smtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
            self.close()
            return SendResult(DEFERRED, 0, f"{type(exc).__name__}: {exc}")

    def _transaction(
        self, smtp: smtplib.SMTP, mail_from: str, rcpt: str, data: bytes
    ) -> SendResult:
        body = crlf(data)
        options = (
            ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") and any(b > 127 for b in body) else []
        )
        for stage, command, ok in (
            (MAIL, lambda: smtp.mail(mail_from, options), (250,)),
            (RCPT, lambda: smtp.rcpt(rcpt), (250, 251)),
            (DATA, lambda: smtp.docmd("DATA"), (354,)),
        ):
            code, resp = command()
            if code not in ok:
                smtp.rset()
                return classify(code, resp.decode("utf-8", "replace"), stage)
        quoted = _LEADING_DOT.sub(b"..", body)
        if not quoted.endswith(b"\r\n"):
            quoted += b"\r\n"
        smtp.send(quoted)
        try:
            smtp.send(b".\r\n")
            code, resp = smtp.getreply()
        except TRANSIENT_ERRORS as exc:
            # The relay has the whole message and may have queued it: sending it again could
            # make a second copy, so (like a crash at this point) it counts as delivered.
            self.close_now()
            log.warning(
                "connection lost after the final dot to %s; counted as delivered: %s", rcpt, exc
            )
            return SendResult(
                SENT, 0, f"assumed delivered: connection lost after the final dot ({exc})"
            )
        return classify(code, resp.decode("utf-8", "replace"), DOT)

    def close_now(self) -> None:
        """Drop the connection without QUIT (mid-DATA: the relay discards the message)."""
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        """Quit politely, or just drop the socket."""
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, *TRANSIENT_ERRORS):
            self._smtp.close()
        self._smtp = None


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


@contextmanager
def connect(
    outbound: str, timeout: float = TIMEOUT
) -> Iterator[SmtpConnection | MaildirConnection]:
    """An outbound connection for settings.outbound, closed afterwards."""
    conn: SmtpConnection | MaildirConnection
    if outbound.startswith("maildir:"):
        conn = MaildirConnection(maildir_path(outbound))
    else:
        conn = SmtpConnection(outbound, timeout)
    try:
        yield conn
    finally:
        conn.close()
