"""`python -m bench` at a tiny size: every benchmark
runs and reports its row (no figures checked).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
TITLES = {
    "ingest": "live ingest",
    "threading": "threading at scale",
    "import": "import",
    "fanout": "fan-out",
    "pages": "pages",
    "bigpages": "pages",
    "memory": "memory",
    "storage": "storage",
}


@pytest.mark.long(61)
def test_every_benchmark_reports_its_rows_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    env = dict(os.environ, LISTGATE_BENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tiny",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,  # a failure is reported with its stderr below
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    rows = [
        line.split(" | ")
        for line in report.splitlines()
        if line.startswith("| ") and not line.startswith("| benchmark")
    ]
    assert "- **cpu**:" in report and "- **sqlite**:" in report and "- **python**:" in report
    for name in BENCHMARKS:
        mine = [r for r in rows if r[0] == f"| {TITLES[name]}" or r[0] == f"| {name}"]
        assert mine, f"no row for {name} in:\n{report}"
        for r in mine:
            # a row is a figure or says why there is none; a crash is a defect
            assert r[2].strip(), r
            assert r[5].strip() != "error", f"{name} crashed: {r[2]}\n{done.stderr[-2000:]}"
    # each acceptance case is measured beside the durable floor, which must have worked
    ingest = [r for r in rows if r[0] == "| live ingest" and "client" in r[1]]
    assert ingest and all("durable floor" in r[6] and "failed" not in r[6] for r in ingest), ingest
    # the table printed on the terminal is the same run
    assert "benchmark" in done.stdout and "live ingest" in done.stdout
