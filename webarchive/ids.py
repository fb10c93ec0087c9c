"""A database id from a request: plain ASCII digits from 1 to MAX_ID, the one check for all.

A route takes an id through the "id" URL converter (registered by init_app before the
blueprints), whose pattern takes only what whole() takes: a number no id can be is a 404 like
any id that does not exist. A query value (a cursor's id, a search's thread, a page, a limit)
is read with whole(): None when it is not one."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, Map, ValidationError

MAX_ID = 2**31 - 1  # the largest id an Integer column holds on PostgreSQL


def whole(raw: str, most: int = MAX_ID) -> int | None:
    """raw as a number from 1 to most in plain ASCII digits (no leading 0), else None.

    "²" is a digit to str.isdigit() that int() refuses; a number past most would overflow.
    """
    if not (raw.isascii() and raw.isdigit()) or raw[0] == "0" or len(raw) > len(str(most)):
        return None
    return int(raw) if int(raw) <= most else None


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


class IdConverter(IntegerConverter):
    """`<id:name>` in a route: a database id, or no match at all (404).

    The number is checked by the route's regular expression, not after it: werkzeug answers a
    path that matched a rule but failed its converter with 405 when another rule (the GET of a
    POST) has the same shape.
    """

    regex = up_to(MAX_ID)

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_ID)

    def to_python(self, value: str) -> int:
        """The id (the regular expression let only whole() numbers through)."""
        number = whole(value)
        if number is None:
            raise ValidationError
        return number


def init_app(app: Flask) -> None:
    """Let routes say <id:name>; call before the blueprints are registered."""
    app.url_map.converters["id"] = IdConverter
