"""`python -m gateway`'s numeric options: a number in ASCII digits within its range, else a usage
error naming the option (exit 2) before anything starts; never another script's digits read as
a number, a negative or zero batch, nor a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.__main__ import parser
from tests.support.config import site_env

NOT_BATCHES = ("٣", "३", "３", "²", "-5", "0", "1_000", " 5", "", "20x", "10001", "9" * 4000)


@pytest.mark.parametrize("raw", NOT_BATCHES)
def test_a_batch_that_is_not_a_number_of_messages_is_a_usage_error(
    raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["--archiver-only", "--batch", raw])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --batch:" in err and "expected a whole number from 1 to 10,000" in err, err


def test_a_batch_in_ascii_digits_is_taken() -> None:
    assert parser().parse_args(["--batch", "07"]).batch == 7
    assert parser().parse_args(["--batch", "10000"]).batch == 10_000
    assert parser().parse_args([]).batch == 100


def test_the_command_refuses_arabic_indic_digits_before_it_starts(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "gateway", "--archiver-only", "--batch", "٣"],
        env=site_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2, (ran.returncode, ran.stderr[-500:])
    assert "python -m gateway: error: argument --batch: '٣': expected a whole number" in ran.stderr
    assert "Traceback" not in ran.stderr and "database" not in ran.stderr
