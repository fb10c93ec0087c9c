"""Signed, expiring, single-purpose tokens for links in mail (itsdangerous)."""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

# Each purpose has its own salt, so a token made for one can never be used for another.
CONFIRM, UNSUBSCRIBE, SIGNIN, BOUNCE = "confirm", "unsubscribe", "signin", "bounce"
MAX_AGE = {CONFIRM: 7 * 86400, UNSUBSCRIBE: 10 * 365 * 86400, SIGNIN: 3600, BOUNCE: 60 * 86400}


class TokenError(ValueError):
    """A token that is forged, altered, expired or meant for something else."""


def make(secret: str, purpose: str, data: Any) -> str:
    """A URL-safe token for purpose carrying data."""
    return URLSafeTimedSerializer(secret, salt=f"listgate.{purpose}").dumps(data)


def read(secret: str, purpose: str, token: str, max_age: int | None = None) -> Any:
    """The data in a token, or TokenError saying why it is refused."""
    serializer = URLSafeTimedSerializer(secret, salt=f"listgate.{purpose}")
    try:
        return serializer.loads(token, max_age=max_age if max_age is not None else MAX_AGE[purpose])
    except SignatureExpired:
        raise TokenError("this link has expired") from None
    except BadSignature:
        raise TokenError("this link is not valid (it was altered, or is meant for something else)") from None
