"""Which local addresses exist: list posting addresses and their command addresses."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from listgate.states import DigestFrequency

DIGEST_OFF = "off"  # NAME+digest-off@: every post again
DIGEST_CHOICES: tuple[str, ...] = (*DigestFrequency, DIGEST_OFF)  # NAME+digest-CHOICE@
# Every address we make must keep its local part under 64 characters (RFC 5321): the longest are
# NAME+bounce-TOKEN (8 + at most 27, for ids up to 2^31), NAME+confirm-CODE (9 + at most 21)
# and NAME+approve-CODE (9 + at most 21).
MAX_LIST_NAME = 32
_NAME = re.compile(rf"^[a-z0-9][a-z0-9._-]{{0,{MAX_LIST_NAME - 1}}}$")


@dataclass(frozen=True)
class Recipient:
    """A parsed local recipient: a list name and, for command addresses, the command."""

    list_name: str
    command: str = ""  # "" for a post
    arg: str = ""  # the token of confirm-TOKEN / bounce-TOKEN

    def address(self, domain: str) -> str:
        """The address this recipient was written as, normalised."""
        local = self.list_name
        if self.command:
            local += f"+{self.command}" + (f"-{self.arg}" if self.arg else "")
        return f"{local}@{domain}"


def valid_list_name(name: str) -> bool:
    """List names: up to MAX_LIST_NAME lower-case letters, digits, dot, dash, underscore; no '+'."""
    return bool(_NAME.match(name))


def parse_recipient(address: str, domain: str) -> Recipient | None:
    """The list and command an envelope address names, or None if it is not ours.

    Tolerates case, a trailing dot on the domain and a quoted local part; refuses
    source routes and any other domain, so we are never an open relay. Our addresses are
    ASCII: a non-ASCII one is never ours, even when case folding would turn it into one
    (U+212A KELVIN SIGN lower-cases to "k").
    """
    addr = address.strip().strip("<>").strip()
    if not addr.isascii():
        return None
    if not addr or addr.startswith("@") or ":" in addr or "%" in addr or "!" in addr:
        return None
    local, sep, dom = addr.rpartition("@")
    if not sep or dom.lower().rstrip(".") != domain.lower():
        return None
    if len(local) >= 2 and local[0] == local[-1] == '"':
        local = local[1:-1]
    if '"' in local or "\\" in local or " " in local:
        return None
    local = local.lower()
    name, plus, rest = local.partition("+")
    if not valid_list_name(name):
        return None
    if not plus:
        return Recipient(name)
    command, dash, arg = rest.partition("-")
    if command in ("subscribe", "unsubscribe", "help") and not dash:
        return Recipient(name, command)
    if (
        command in ("confirm", "bounce", "approve", "reject")
        and dash
        and arg
        and re.fullmatch(r"[a-z0-9_.=-]{4,60}", arg)
    ):
        return Recipient(name, command, arg)
    if command == "digest" and (arg in DIGEST_CHOICES or not dash):
        return Recipient(name, command, arg)
    return None


def ascii_reading(address: str) -> str:
    """What a non-ASCII address imitates: NFKC and case folding (for logs; it is never ours)."""
    return unicodedata.normalize("NFKC", address).casefold()


def eight_bit_problem(address: str, mail_options: list[str]) -> str:
    """The 553 reply for a non-ASCII envelope sender the client may not use here, else ''.

    Without SMTPUTF8 a sender must be ASCII (RFC 6531); with it, valid UTF-8 (aiosmtpd hands
    other bytes over as surrogates, which no database can store).
    """
    if address.isascii():
        return ""
    if "SMTPUTF8" not in (o.upper() for o in mail_options):
        return "553 5.6.7 A non-ASCII sender address needs SMTPUTF8 (MAIL FROM:<...> SMTPUTF8)"
    if any("\udc80" <= ch <= "\udcff" for ch in address):
        return "553 5.6.7 The sender address is not valid UTF-8"
    return ""
