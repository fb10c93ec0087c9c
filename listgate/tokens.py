"""Signed tokens: expiring one-purpose ones for links in mail (itsdangerous), short VERP ones."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

# Each purpose has its own salt, so a token made for one can never be used for another.
CONFIRM, UNSUBSCRIBE, SIGNIN, BOUNCE = "confirm", "unsubscribe", "signin", "bounce"
_B32 = "0123456789abcdefghijklmnopqrstuv"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_AGE = {CONFIRM: 7 * 86400, UNSUBSCRIBE: 10 * 365 * 86400, SIGNIN: 3600, BOUNCE: 60 * 86400}


class TokenError(ValueError):
    """A token that is forged, altered, expired or meant for something else."""


def make(secret: str, purpose: str, data: Any) -> str:
    """A URL-safe token for purpose carrying data."""
    return URLSafeTimedSerializer(secret, salt=f"listgate.{purpose}").dumps(data)


def read(secret: str, purpose: str, token: str, max_age: int | None = None) -> Any:
    """The data in a token, or TokenError saying why it is refused."""
    return read_issued(secret, purpose, token, max_age)[0]


def read_issued(
    secret: str, purpose: str, token: str, max_age: int | None = None
) -> tuple[Any, datetime]:
    """The data in a token and when it was made (to the second, UTC), or TokenError."""
    serializer = URLSafeTimedSerializer(secret, salt=f"listgate.{purpose}")
    try:
        data, issued = serializer.loads(
            token,
            max_age=max_age if max_age is not None else MAX_AGE[purpose],
            return_timestamp=True,
        )
        return data, issued
    except SignatureExpired:
        raise TokenError("this link has expired") from None
    except BadSignature:
        raise TokenError(
            "this link is not valid (it was altered, or is meant for something else)"
        ) from None


def encode_int(value: int) -> str:
    """A non-negative int in lower-case base 32 (VERP-safe)."""
    out = ""
    while True:
        value, digit = divmod(value, 32)
        out = _B32[digit] + out
        if not value:
            return out


def decode_int(text: str) -> int:
    """The inverse of encode_int; ValueError on anything else."""
    if not text or any(c not in _B32 for c in text):
        raise ValueError(text)
    return int(text, 32)


# What a VERP token names: a post's copy (a deliveries row), a digest's copy (a digests_sent row),
# or a subscription (digests mailed before digest copies were named: their bounces still match).
VERP_DELIVERY, VERP_DIGEST, VERP_SUBSCRIPTION = "d", "g", "s"
_VERP_KINDS = VERP_DELIVERY + VERP_DIGEST + VERP_SUBSCRIPTION


def verp_token(secret: str, kind: str, ident: int, made: datetime | None = None) -> str:
    """An opaque lower-case token naming a delivery ('d'), a digest sent ('g') or a subscription
    ('s'); made: when that row was made, so the token names it and not a later row given its id
    after it was deleted (SQLite gives the id of the last row again)."""
    body = kind + encode_int(ident)
    return f"{body}.{_verp_mac(secret, body, made)}"


def _verp_mac(secret: str, body: str, made: datetime | None) -> str:
    text = f"verp:{body}"
    if made is not None:  # to the microsecond, as stored (UTC; naive is taken for UTC)
        made = made if made.tzinfo is not None else made.replace(tzinfo=UTC)
        text += f":{(made - _EPOCH) // timedelta(microseconds=1)}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:10]


def read_verp_token(
    secret: str, token: str, made_at: Callable[[str, int], datetime | None] | None = None
) -> tuple[str, int] | None:
    """(kind, id) of a token made by verp_token, or None when forged, malformed, or made for a row
    of that id that is gone (made_at(kind, id): when the row with that id now was made, or None).
    A token made without the time (mailed before tokens named it) still matches its id."""
    body, _, mac = token.lower().partition(".")
    if len(body) < 2 or body[0] not in _VERP_KINDS:
        return None
    try:
        found = body[0], decode_int(body[1:])
    except ValueError:
        return None
    if hmac.compare_digest(mac, _verp_mac(secret, body, None)):
        return found
    made = made_at(*found) if made_at is not None else None
    if made is not None and hmac.compare_digest(mac, _verp_mac(secret, body, made)):
        return found
    return None
