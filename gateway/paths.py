"""The path of MAIL FROM and RCPT TO, read without the email package when it has the plain shape."""

from __future__ import annotations

import re

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# <local@domain>, both dot-atoms of RFC 5321 ASCII atext, then nothing or spaces and parameters
# that start with neither a space nor a comment: what nearly every MTA and client sends.
_PLAIN = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>(?: *([^\s(].*))?", re.DOTALL)


def plain_path(arg: str) -> tuple[str, str] | None:
    """(address, parameters) of a plain `<local@domain> PARAMS`, or None for any other shape.

    For this shape the answer is exactly what aiosmtpd's parser (the email package's
    get_angle_addr, ~35 us a call) gives; every other shape (quoted or UTF-8 local parts,
    address literals, comments, source routes, '<>') is left to it.
    """
    m = _PLAIN.fullmatch(arg)
    return (m[1], m[2] or "") if m else None
