"""A number someone else wrote is read in ASCII digits only, as int() reads those."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listgate.numerals import MAX_ID, hex_id, number

OTHER_DIGITS = "²٣३３٠०０"


@given(st.integers(0, 10**20), st.integers(0, 10**20), st.integers(0, 3))
def test_ascii_digits_are_read_as_int_reads_them_up_to_the_bound(
    value: int, most: int, zeros: int
) -> None:
    assert number("0" * zeros + str(value), most) == (value if value <= most else None)


@given(st.text(alphabet="0123456789" + OTHER_DIGITS + " _-+x", min_size=1, max_size=8))
def test_anything_but_ascii_digits_is_no_number(raw: str) -> None:
    expected = int(raw) if raw.isascii() and raw.isdigit() else None
    assert number(raw, 10**9) == expected


@given(st.integers(-5, MAX_ID + 5))
def test_a_hex_id_is_an_id_in_hexadecimal(value: int) -> None:
    expected = value if 1 <= value <= MAX_ID else None
    assert hex_id(f"{value:x}") == expected and hex_id(f"{value:X}") == expected


def test_what_int_16_takes_beside_hex_digits_is_no_hex_id() -> None:
    for raw in ("", "٣", "0x1f", "1_f", " 1f", "-1", "+1", "g", "f" * 20, "0"):
        assert hex_id(raw) is None, raw
    assert hex_id("000001f") == 31


@pytest.mark.parametrize(
    "args",
    [
        ["import", "--list", "dev", "--batch"],
        ["archiver", "--batch"],
        ["web", "--workers"],
    ],
)
@pytest.mark.parametrize("raw", ["٣", "३", "３", "-5", "0", "1_000", " 5", "99999"])
def test_a_count_on_the_command_line_is_ascii_digits_in_its_range(
    args: list[str], raw: str
) -> None:
    from click.testing import CliRunner

    from listgate import cli

    result = CliRunner().invoke(
        cli.main, [*args, raw, "x"] if args[0] == "import" else [*args, raw]
    )
    assert result.exit_code == 2, result.output
    assert "expected a whole number from 1 to" in result.output and "digits 0-9" in result.output
