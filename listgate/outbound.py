"""The outbound relay (LISTGATE_OUTBOUND): opening an SMTP session to it, and the size it accepts.

The worker sends all its mail through such sessions (worker/relay_sessions.py); the gateway asks the
relay's EHLO SIZE so that it never accepts a post the relay would refuse (gateway/relaysize.py).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from urllib.parse import unquote, urlsplit

from listgate.numerals import number

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 10.0


def open_session(url: str, timeout: float) -> smtplib.SMTP:
    """An SMTP session to the relay at url: greeted, secured (smtps, STARTTLS), logged in."""
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 25
    if parts.scheme == "smtps":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        # The message and its final "." go out as two writes (see worker/relay_sessions.py): without
        # TCP_NODELAY, Nagle's algorithm and delayed ACKs stall every message by ~40 ms.
        assert smtp.sock is not None  # connected by the constructor, which was given a host
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo_or_helo_if_needed()
        if parts.scheme == "smtp+starttls":
            _require_starttls(smtp, host, port)
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
    except BaseException:
        smtp.close()  # refused after connecting (EHLO, STARTTLS, login): the socket goes now
        raise
    return smtp


def _require_starttls(smtp: smtplib.SMTP, host: str, port: int) -> None:
    """Refuse to go on (no AUTH, no mail in plaintext) when the relay does not offer STARTTLS."""
    if not smtp.has_extn("starttls"):
        log.error(
            "outbound relay %s:%s does not offer STARTTLS but LISTGATE_OUTBOUND demands it "
            "(smtp+starttls://): nothing sent, no credentials sent; mail deferred",
            host,
            port,
        )
        raise smtplib.SMTPNotSupportedError(
            f"relay {host}:{port} does not offer STARTTLS (required by smtp+starttls://)"
        )


def advertised_size(url: str, timeout: float = PROBE_TIMEOUT) -> int | None:
    """The relay's EHLO SIZE (0: no limit); None when url is no relay or it cannot be asked."""
    if urlsplit(url).scheme not in ("smtp", "smtps", "smtp+starttls"):
        return None
    try:
        smtp = open_session(url, timeout)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning(
            "could not ask the outbound relay for its size limit: %s: %s", type(exc).__name__, exc
        )
        return None
    size = smtp.esmtp_features.get("size", "").strip()
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
    return number(size, 2**63 - 1) or 0
