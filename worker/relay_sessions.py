"""The sessions to the relay: many transactions at once, driven in lock-step a wave at a time.

A fan-out sends one personal copy per recipient. Over one SMTP session every copy costs four
round trips (MAIL, RCPT, DATA, the final "."), so a single session mostly waits. A wave puts
one transaction on each of `size` sessions and takes every step on all of them before reading
the replies, so the waits overlap (the relay need not offer PIPELINING: each session still
sends one command at a time).

The final "." is what makes the relay take a message. `send` hands the dots to
`handover(indexes, send_dots)`: worker/delivery.py opens a write transaction there, marks the
rows it still holds as `handing` (the others are dropped before their "." and the relay
discards them), calls send_dots for those, and commits right after the dots went out (see
docs/worker.md, "Exactly once"). With a maildir: outbound (the embedded default) a wave
writes one file per copy instead.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from listgate.outbound import open_session
from worker.mailer import (
    ABANDONED,
    DATA,
    DEFERRED,
    DOT,
    MAIL,
    RCPT,
    TIMEOUT,
    TRANSIENT_ERRORS,
    MaildirConnection,
    SendResult,
    classify,
    crlf,
    maildir_path,
)

log = logging.getLogger(__name__)

SIZE = 16  # sessions per worker process: enough to hide the round trips, few for any relay
_LEADING_DOT = re.compile(rb"(?m)^\.")
_STUFFED_DOT = re.compile(rb"(?m)^\.\.")
SendDots = Callable[[set[int]], set[int]]  # (indexes still ours) -> indexes whose dot went out
Handover = Callable[[list[int], SendDots], set[int]]


@dataclass(frozen=True)
class Outgoing:
    """One copy for one recipient, already in wire form (CRLF, dot-stuffed, no final dot).

    Addresses come from our own database (validated when subscribed) and are sent as <addr>.
    """

    mail_from: str
    rcpt: str
    wire: bytes
    eight_bit: bool = False


def wire_form(data: bytes) -> bytes:
    """The message as DATA carries it: CRLF line ends, leading dots doubled, ending in CRLF."""
    quoted = _LEADING_DOT.sub(b"..", crlf(data))
    return quoted if quoted.endswith(b"\r\n") else quoted + b"\r\n"


class Wave(Protocol):
    """Sends up to `size` copies at once."""

    size: int

    def send(self, items: list[Outgoing], handover: Handover) -> list[SendResult]: ...


class Session:
    """One SMTP session to the relay, opened (EHLO, STARTTLS, AUTH) when first used, reused
    across waves, and opened again after it was dropped."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    @property
    def is_open(self) -> bool:
        """True while a session opened earlier is kept (the relay may have ended it since)."""
        return self._smtp is not None

    def session(self) -> smtplib.SMTP:
        """The open SMTP session."""
        if self._smtp is None:
            self._smtp = open_session(self.url, self.timeout)
        return self._smtp

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


class SmtpWave:
    """`size` SMTP sessions to one relay, each reused across waves and reopened after a drop."""

    def __init__(self, url: str, size: int = SIZE, timeout: float = TIMEOUT) -> None:
        self.size = size
        self.sessions = [Session(url, timeout) for _ in range(size)]
        # A wave none of whose sessions could be opened (the relay unreachable, or refusing
        # every session: a greeting of 421/554, a wrong password's 535, no STARTTLS where it is
        # demanded): why. The later waves of this connection defer their copies untried rather
        # than knock again, once per wave (a relay locks an account after a few failed logins).
        self.refused: SendResult | None = None

    def send(self, items: list[Outgoing], handover: Handover) -> list[SendResult]:
        """One transaction per item (item i on session i); a result per item, in order."""
        if self.refused is not None:
            return [self.refused] * len(items)
        results: list[SendResult | None] = [None] * len(items)
        kept = [i for i in range(len(items)) if self.sessions[i].is_open]
        opened = self._open(range(len(items)), results)
        if items and not opened:
            self.refused = results[0]  # and nothing goes on below: no session is live
        live = self._mail(opened, items, results)
        # A session kept from an earlier wave may have been ended by the relay meanwhile (its
        # idle timeout, a restart, a limit of messages per session): nothing of the copy went
        # out yet, so it is tried once more on a new session rather than deferred.
        ended = [i for i in kept if _session_ended(results[i])]
        if ended:
            for i in ended:
                self.sessions[i].close_now()
                results[i] = None
            live = sorted(live + self._mail(self._open(ended, results), items, results))
        live = self._step(
            live,
            results,
            RCPT,
            {250, 251},
            lambda i, smtp: smtp.putcmd("rcpt", f"TO:<{items[i].rcpt}>"),
        )
        live = self._step(live, results, DATA, {354}, lambda i, smtp: smtp.putcmd("data"))
        live = [i for i in live if self._write(i, items[i].wire, results)]
        dotted = handover(live, lambda ours: self._dots(live, ours, results)) if live else set()
        for i in sorted(dotted):
            results[i] = self._final_reply(i, items[i].rcpt)
        return [r if r is not None else SendResult(DEFERRED, 0, "not sent") for r in results]

    def _mail(
        self, live: list[int], items: list[Outgoing], results: list[SendResult | None]
    ) -> list[int]:
        """MAIL FROM on every live session; those that may go on."""
        return self._step(
            live,
            results,
            MAIL,
            {250},
            lambda i, smtp: smtp.putcmd(
                "mail", f"FROM:<{items[i].mail_from}>{self._options(smtp, items[i])}"
            ),
        )

    def _dots(self, live: list[int], ours: set[int], results: list[SendResult | None]) -> set[int]:
        """Send the final dot on the sessions still ours; drop the others before theirs."""
        for i in live:
            if i not in ours:
                self.sessions[i].close_now()  # before its ".": the relay discards the message
                results[i] = SendResult(ABANDONED, 0, "claim lost before the final dot")
        return {i for i in live if i in ours and self._write(i, b".\r\n", results)}

    @staticmethod
    def _options(smtp: smtplib.SMTP, item: Outgoing) -> str:
        return " BODY=8BITMIME" if item.eight_bit and smtp.has_extn("8bitmime") else ""

    def _open(self, indexes: Iterable[int], results: list[SendResult | None]) -> list[int]:
        live = []
        for i in indexes:
            try:
                self.sessions[i].session()
                live.append(i)
            except smtplib.SMTPResponseException as exc:
                self.sessions[i].close_now()
                results[i] = SendResult(
                    DEFERRED, exc.smtp_code, f"relay refused the session: {exc.smtp_error!r}"
                )
            except (smtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
                self.sessions[i].close_now()
                results[i] = SendResult(DEFERRED, 0, f"{type(exc).__name__}: {exc}")
        return live

    def _step(
        self,
        live: list[int],
        results: list[SendResult | None],
        stage: str,
        ok: set[int],
        put: Callable[[int, smtplib.SMTP], None],
    ) -> list[int]:
        """Write one command on every live session, then read every reply; those that may go on."""
        written = [i for i in live if self._guard(i, results, partial(put, i))]
        passed = []
        for i in written:
            reply: list[tuple[int, bytes]] = []
            if not self._guard(i, results, partial(_read_reply, reply)):
                continue
            code, text = reply[0]
            if code in ok:
                passed.append(i)
                continue
            results[i] = classify(code, text.decode("utf-8", "replace"), stage)
            self._guard(i, [None] * len(results), lambda s: s.rset())
        return passed

    def _write(self, i: int, data: bytes, results: list[SendResult | None]) -> bool:
        return self._guard(i, results, lambda s: s.send(data))

    def _guard(
        self, i: int, results: list[SendResult | None], act: Callable[[smtplib.SMTP], object]
    ) -> bool:
        """Run act on session i; a network failure drops the session and defers its copy."""
        try:
            act(self.sessions[i].session())
            return True
        except (smtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
            self.sessions[i].close_now()
            results[i] = SendResult(DEFERRED, 0, f"{type(exc).__name__}: {exc}")
            return False

    def _final_reply(self, i: int, rcpt: str) -> SendResult:
        try:
            code, text = self.sessions[i].session().getreply()
        except (smtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
            # The relay may or may not have queued it: we send it again (a possible duplicate,
            # same Message-ID) rather than risk that it never arrives.
            self.sessions[i].close_now()
            log.warning("no reply after the final dot for %s, will send again: %s", rcpt, exc)
            return SendResult(
                DEFERRED, 0, f"no reply after the final dot ({type(exc).__name__}: {exc})"
            )
        return classify(code, text.decode("utf-8", "replace"), DOT)

    def close(self) -> None:
        """Quit every session."""
        for session in self.sessions:
            session.close()


class MaildirWave:
    """The embedded default: each copy is one file, written after the claim check."""

    def __init__(self, conn: MaildirConnection, size: int = SIZE) -> None:
        self.size = size
        self.conn = conn

    def send(self, items: list[Outgoing], handover: Handover) -> list[SendResult]:
        """Write the copies still claimed; a result per item, in order."""
        results: list[SendResult] = [SendResult(ABANDONED, 0, "claim lost")] * len(items)

        def write(ours: set[int]) -> set[int]:
            for i in ours:
                results[i] = self.conn.send(
                    items[i].mail_from, items[i].rcpt, _STUFFED_DOT.sub(b".", items[i].wire)
                )
            return {i for i in ours if results[i].ok}

        handover(list(range(len(items))), write)
        return results

    def close(self) -> None:
        """Nothing to close."""


@contextmanager
def connect(
    outbound: str, size: int = SIZE, timeout: float = TIMEOUT
) -> Iterator[SmtpWave | MaildirWave]:
    """A wave sender for settings.outbound, closed afterwards."""
    out: SmtpWave | MaildirWave
    if outbound.startswith("maildir:"):
        out = MaildirWave(MaildirConnection(maildir_path(outbound)), size)
    else:
        out = SmtpWave(outbound, size, timeout)
    try:
        yield out
    finally:
        out.close()


def _session_ended(result: SendResult | None) -> bool:
    """True when MAIL found the session gone: dropped, or closing (421, RFC 5321 3.8)."""
    return result is not None and result.status == DEFERRED and result.code in (0, 421)


def _read_reply(into: list[tuple[int, bytes]], smtp: smtplib.SMTP) -> None:
    into.append(smtp.getreply())
