"""DKIM signatures on the mail listgate writes, and ARC sets on the copies of posts (dkimpy).

A post's own bytes and the author's signature are never touched: the ARC set goes on top of
the copy. It is made once per post, before the per-recipient unsubscribe link is cut in, so
its ARC-Message-Signature leaves List-Unsubscribe out (the only header that differs).
"""

from __future__ import annotations

import logging
import re
from functools import cached_property
from pathlib import Path

import dkim

from listgate.config import Settings
from listgate.mail import fields
from listgate.mail.fields import Header
from listgate.mail.names import ARC_SEAL, DKIM_SIGNATURE
from worker.resolver import Resolver

log = logging.getLogger(__name__)

# The headers that make the message what it is: both the signature and the seal cover them.
_MESSAGE = (
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)
SIGNED = (
    b"from",
    b"to",
    *_MESSAGE,
    b"auto-submitted",
    b"list-id",
    b"list-post",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
SEALED = (
    b"from",
    b"to",
    b"cc",
    *_MESSAGE,
    b"list-id",
    b"list-post",
    b"list-archive",
    b"list-help",
    b"archived-at",
)
_D_TAG = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)")


class Signer:
    """Signs with LISTGATE_DKIM_KEY, seals with LISTGATE_ARC_KEY; an unset key skips its step."""

    def __init__(self, settings: Settings, resolver: Resolver) -> None:
        self.settings, self.resolver = settings, resolver

    @cached_property
    def _dkim_key(self) -> bytes:
        return Path(self.settings.dkim_key).read_bytes() if self.settings.dkim_key else b""

    @cached_property
    def _arc_key(self) -> bytes:
        return Path(self.settings.arc_key).read_bytes() if self.settings.arc_key else b""

    def sign(self, data: bytes) -> bytes:
        """data with a DKIM-Signature for the list domain on top (unchanged without a key)."""
        if not self._dkim_key:
            return data
        linesep = b"\r\n" if b"\r\n" in data[:4096] else b"\n"
        signature = dkim.sign(
            data,
            self.settings.dkim_selector.encode(),
            self.settings.domain.encode(),
            self._dkim_key,
            include_headers=_present(data, SIGNED),
            linesep=linesep,
        )
        return signature + data

    def seal(self, data: bytes, received: bytes | None = None) -> bytes:
        """data with Authentication-Results and an ARC set on top (unchanged without an ARC key).

        The results are those of the mail as it was received (before a DMARC From rewrite).
        """
        if not self._arc_key:
            return data
        linesep = b"\r\n" if b"\r\n" in data[:4096] else b"\n"
        results = self.authentication_results(received if received is not None else data)
        stamped = b"Authentication-Results: " + results + linesep + data
        try:
            arc_set = dkim.arc_sign(
                stamped,
                self.settings.arc_selector.encode(),
                self.settings.domain.encode(),
                self._arc_key,
                self.settings.domain.encode(),
                include_headers=_present(data, SEALED),
                linesep=linesep,
            )
        except dkim.DKIMException as exc:  # a mail too broken to seal still goes out, unsealed
            log.warning("no ARC set for this copy: %s", exc)
            return data
        return b"".join(arc_set) + stamped

    def authentication_results(self, data: bytes) -> bytes:
        """What this list saw: the author's DKIM result and any earlier ARC chain's (RFC 8601)."""
        parts = [self.settings.domain.encode()]
        header = fields.read(data)
        if header.all(DKIM_SIGNATURE):
            try:
                ok = dkim.verify(
                    data, dnsfunc=self.resolver.dkim, timeout=self.settings.dns_timeout
                )
            except Exception as exc:  # noqa: BLE001 - dkimpy raises on malformed signatures
                log.info("DKIM verification error: %s", exc)
                ok = False
            domain = _signing_domain(header)
            parts.append(
                b"dkim="
                + (b"pass" if ok else b"fail")
                + (b" header.d=" + domain if domain else b"")
            )
        else:
            parts.append(b"dkim=none")
        if header.all(ARC_SEAL):
            try:
                cv, _, _ = dkim.arc_verify(
                    data, dnsfunc=self.resolver.dkim, timeout=self.settings.dns_timeout
                )
            except Exception as exc:  # noqa: BLE001
                log.info("ARC verification error: %s", exc)
                cv = dkim.CV_Fail
            parts.append(b"arc=" + cv)
        return b"; ".join(parts)


def _present(data: bytes, names: tuple[bytes, ...]) -> list[bytes]:
    """Those of names (lower-cased) that data's header block has a field of."""
    have = {name.lower().encode() for name, _ in fields.read(data).fields}
    return [name for name in names if name in have]


def _signing_domain(header: Header) -> bytes:
    """The d= of the topmost DKIM-Signature ('' when unreadable)."""
    match = _D_TAG.search(header.first(DKIM_SIGNATURE))
    return match.group(1).encode("ascii", "surrogateescape") if match else b""
