"""The benchmark report: figures, the table and docs/benchmarks.md blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import selected
from bench.common import Row, median, percentile
from bench.report import render_table, write_report

INFO = {"date": "2026-11-25 23:00 UTC", "cpu": "2 cores"}


def test_percentiles_and_median() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert percentile([], 50) == 0.0


def test_unavailable_rows_carry_a_reason_and_no_number() -> None:
    row = Row.unavailable("pages", "all", "the web archive did not start")
    assert row.value == "not available: the web archive did not start"
    assert row.verdict == "n/a" and row.ratio == ""


def test_table_lists_every_row() -> None:
    rows = [
        Row("import", "linux-man", "500 msg/s", "2.9", ">= 2.0x", "met"),
        Row("pages", "home", "12 ms"),
    ]
    text = render_table(rows)
    assert "linux-man" in text and "home" in text and text.splitlines()[0].startswith("benchmark")


def test_report_replaces_only_its_own_block(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    write_report(out, "full", INFO, [Row("import", "linux-man", "500 msg/s")], [], "")
    out.write_text(out.read_text() + "\nHand-written analysis stays.\n")
    write_report(
        out, "quick", INFO, [Row("import", "linux-man", "900 msg/s")], ["a note"], "--quick"
    )
    write_report(out, "quick", INFO, [Row("import", "linux-man", "950 msg/s")], [], "--quick")
    text = out.read_text()
    assert "500 msg/s" in text and "950 msg/s" in text and "900 msg/s" not in text
    assert "Hand-written analysis stays." in text
    assert text.count("bench:quick:start") == 1


def test_unknown_benchmark_names_are_refused() -> None:
    assert selected("pages,storage") == ["pages", "storage"]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        selected("pages,nope")
