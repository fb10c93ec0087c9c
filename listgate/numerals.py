"""A number someone else wrote (a setting, a relay's reply, a request): ASCII digits only.

int(), str.isdigit() and a regular expression's \\d take the digits of every script (Arabic-Indic
٣, Devanagari ३, fullwidth ３; "²" is a digit to isdigit() that int() refuses), and int() takes
"1_000" and " 5" too: such a text is read here, so that one spelling is one number everywhere.
"""

from __future__ import annotations

MAX_PORT = 65535


def ascii_digits(raw: str) -> bool:
    """Whether raw is one or more of 0-9 and nothing else."""
    return raw.isascii() and raw.isdigit()


def number(raw: str, most: int) -> int | None:
    """raw as a number from 0 to most in ASCII digits (leading zeros allowed), else None."""
    if not ascii_digits(raw) or len(raw.lstrip("0")) > len(str(most)):
        return None  # the length first: int() of thousands of digits is refused or slow
    value = int(raw)
    return value if value <= most else None
