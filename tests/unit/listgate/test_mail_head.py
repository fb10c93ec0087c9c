"""What a header scan at DATA answers about one field (MessageHead.header): the first value of the
field of that name, in any case, decoded as parse() decodes it, or '' when there is none."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from listgate.mail.message import MessageHead
from listgate.mail.parser import parse_head
from listgate.mail.values import first_text

_NAMES = st.sampled_from(["Sender", "SENDER", "sender", "X-Autoreply", "x-autoreply", "Subject"])
_VALUES = st.sampled_from(["", "a@example.org", "=?utf-8?q?caf=C3=A9?=", " two\r\n words", "yes"])


def _head(fields: list[tuple[str, str]]) -> MessageHead:
    return MessageHead("id@x", False, "a@example.org", "", "", tuple(fields))


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8), _NAMES)
def test_a_field_is_answered_by_its_first_value_in_any_case(
    fields: list[tuple[str, str]], asked: str
) -> None:
    head = _head(fields)
    assert head.header(asked) == first_text(tuple(fields), asked)
    assert head.header(asked) == head.header(asked.swapcase())  # asked twice: the same answer


def test_the_first_of_repeated_fields_counts_and_an_absent_one_is_empty() -> None:
    raw = (
        b"From: a@example.org\r\nsender: first@example.org\r\n"
        b"SENDER: second@example.org\r\nX-Autoreply: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n"
    )
    head = parse_head(raw)
    assert (head.header("Sender"), head.header("x-autoreply"), head.header("Precedence")) == (
        "first@example.org",
        "café",
        "",
    )
