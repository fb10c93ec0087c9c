"""A number someone else wrote (a setting, a relay's reply, a command address): ASCII only.

int(), str.isdigit() and a regular expression's \\d take the digits of every script (Arabic-Indic
٣, Devanagari ३, fullwidth ３; "²" is a digit to isdigit() that int() refuses), and int() takes
"1_000" and " 5" too: such a text is read here, so that one spelling is one number everywhere.
"""

from __future__ import annotations

import re
from typing import Any

import click

MAX_ID = 2**31 - 1  # the largest id an Integer column holds on PostgreSQL
MAX_PORT = 65535
_HEX = re.compile("[0-9a-fA-F]+")


def ascii_digits(raw: str) -> bool:
    """Whether raw is one or more of 0-9 and nothing else."""
    return raw.isascii() and raw.isdigit()


def number(raw: str, most: int) -> int | None:
    """raw as a number from 0 to most in ASCII digits (leading zeros allowed), else None."""
    if not ascii_digits(raw) or len(raw.lstrip("0")) > len(str(most)):
        return None  # the length first: int() of thousands of digits is refused or slow
    value = int(raw)
    return value if value <= most else None


def hex_id(raw: str) -> int | None:
    """raw as an id written in hexadecimal (a code in a command address), 1 to MAX_ID, else None."""
    if not _HEX.fullmatch(raw) or len(raw.lstrip("0")) > len(f"{MAX_ID:x}"):
        return None  # int(raw, 16) takes "٣", "0x1f" and "1_f" too
    value = int(raw, 16)
    return value if 1 <= value <= MAX_ID else None


class DatabaseId(click.ParamType):
    """An id on the command line (`type=ID`): 0 to MAX_ID in ASCII digits, else a usage error."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The id, or click's "Invalid value" naming the parameter."""
        found = value if isinstance(value, int) else number(str(value), MAX_ID)
        if found is None:
            self.fail(f"{value!r}: expected an id, a number in 0-9 up to {MAX_ID:,}", param, ctx)
        return found


ID = DatabaseId()


class Count(click.ParamType):
    """A count on the command line (`type=Count(1, 10_000)`): least to most in ASCII digits, else
    a usage error naming the range."""

    name = "count"

    def __init__(self, least: int, most: int) -> None:
        self.least, self.most = least, most

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The count, or click's "Invalid value" naming the parameter and the range."""
        found = value if isinstance(value, int) else number(str(value), self.most)
        if found is None or not self.least <= found <= self.most:
            self.fail(
                f"{value!r}: expected a whole number from {self.least:,} to {self.most:,} "
                "in digits 0-9",
                param,
                ctx,
            )
        return found
