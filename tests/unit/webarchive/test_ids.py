"""The one reading of a number from a request: whole() and the route pattern agree on every text."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from webarchive.ids import MAX_ID, day, signed, up_to, whole

LIMITS = st.sampled_from([1, 7, 9, 10, 12, 99, 100, 101, 500, MAX_ID]) | st.integers(1, 10**12)
NEAR = st.integers(0, 40).map(lambda k: k - 20)
TEXTS = (
    st.integers(0, 10**13).map(str)
    | st.text(alphabet="0123456789²٣", max_size=12)
    | st.integers(0, 10**4).map(lambda n: "0" + str(n))
)


@given(LIMITS, TEXTS)
def test_the_route_pattern_takes_exactly_what_whole_takes(most: int, raw: str) -> None:
    assert (re.fullmatch(up_to(most), raw) is not None) == (whole(raw, most) is not None)


@given(LIMITS, NEAR)
def test_numbers_around_the_limit_are_taken_up_to_it(most: int, offset: int) -> None:
    number = most + offset
    expected = number if 1 <= number <= most else None
    assert whole(str(number), most) == expected
    assert (re.fullmatch(up_to(most), str(number)) is not None) == (expected is not None)


def test_what_no_id_can_be_is_refused() -> None:
    for raw in ("", "0", "007", "²", "٣", "-1", " 1", "1.0", "9" * 30, str(2**31)):
        assert whole(raw) is None, raw
    assert whole(str(MAX_ID)) == MAX_ID and whole("1") == 1


def test_only_ascii_digits_are_a_number_or_a_day() -> None:
    for raw in ("٣", "३", "３", "²", "1_0", " 5", "+5", "--5", "-", ""):
        assert signed(raw, 10**6) is None, raw
        assert whole(raw) is None, raw
    assert [signed(r, 100) for r in ("-100", "0", "7", "101", "-101")] == [-100, 0, 7, None, None]
    for raw in ("٢٠٢٦-03-01", "２０２６-03-01", "2026-०३-01", "2026-02-30", "2026-03"):
        assert day(raw) is None, raw
    assert day("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
