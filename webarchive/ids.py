"""A number from a request: plain ASCII digits (listgate.numerals), the one check for all.

A route takes an id through the "id" URL converter and another number (a year, a month) through
"number" (both registered by init_app before the blueprints), whose pattern takes only what
whole() takes: a number no id can be is a 404 like any id that does not exist. A query value (a
cursor, a search's thread, page or day, a limit) is read with whole(), signed() or day(): None
when it is not one."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from werkzeug.routing import IntegerConverter, Map, ValidationError

from listgate.numerals import MAX_ID, number


def whole(raw: str, most: int = MAX_ID) -> int | None:
    """raw as a number from 1 to most in plain ASCII digits (no leading 0), else None.

    "²" is a digit to str.isdigit() that int() refuses; a number past most would overflow.
    """
    return None if raw.startswith("0") else number(raw, most)


def signed(raw: str, most: int) -> int | None:
    """raw as a number from -most to most in ASCII digits after an optional "-", else None."""
    size = number(raw.removeprefix("-"), most)
    return None if size is None else -size if raw.startswith("-") else size


def day(raw: str) -> datetime | None:
    """raw as a day, YYYY-MM-DD in ASCII digits, at midnight UTC; else None."""
    if not raw.isascii():  # strptime's %Y takes "٢٠٢٦"
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def up_to(most: int) -> str:
    """A regular expression of exactly the numbers whole() takes: 1 to most, no leading 0."""
    digits = str(most)
    shorter = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    same_length = [
        f"{digits[:i]}[{'1' if i == 0 else '0'}-{int(d) - 1}][0-9]{{{len(digits) - i - 1}}}"
        for i, d in enumerate(digits)
        if int(d) > (1 if i == 0 else 0)  # a smaller digit here, then any digits
    ]
    return "(?:" + "|".join([*shorter, *same_length, digits]) + ")"


class DigitsConverter(IntegerConverter):
    """`<id:name>` (an id) or `<number(most=12, zeros=True):name>` in a route; else no match (404).

    The number is checked by the route's regular expression, not after it: werkzeug answers a
    path that matched a rule but failed its converter with 405 when another rule (the GET of a
    POST) has the same shape. zeros lets a number be written with leading zeros (a month's 03).
    """

    def __init__(self, map: Map, most: int = MAX_ID, zeros: bool = False) -> None:
        super().__init__(map, min=1, max=most)
        self.most, self.zeros = most, zeros
        self.regex = ("0*" if zeros else "") + up_to(most)

    def to_python(self, value: str) -> int:
        """The number (the regular expression let only whole() numbers through)."""
        number = whole(value.lstrip("0") if self.zeros else value, self.most)
        if number is None:
            raise ValidationError
        return number


def init_app(app: Flask) -> None:
    """Let routes say <id:name> and <number(...):name>; call before registering the blueprints."""
    app.url_map.converters["id"] = DigitsConverter
    app.url_map.converters["number"] = DigitsConverter
