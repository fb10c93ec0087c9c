"""`python -m bench` at a tiny size: every benchmark
runs and reports its row (no figures checked).

The benchmarks run in three groups, each its own `python -m bench --only ...` (a test each, so
that pytest-xdist spreads them); a benchmark that reuses what another built in the same run is
in that one's group (memory: the fan-out's workers and the import; pages and storage: the
linux-man archive of import; the big pages: threading's prefilled list).
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


GROUPS = {
    "ingest": ("ingest",),
    "archives": ("fanout", "import", "memory", "pages", "storage"),
    "prefilled": ("threading", "bigpages"),
}


def test_the_groups_run_every_benchmark_once() -> None:
    named = [name for group in GROUPS.values() for name in group]
    assert sorted(named) == sorted(BENCHMARKS), named


@pytest.mark.parametrize(
    "group",
    [
        pytest.param("ingest", marks=pytest.mark.long(30)),
        pytest.param("archives", marks=pytest.mark.long(50)),
        pytest.param("prefilled", marks=pytest.mark.long(20)),
    ],
)
def test_every_benchmark_reports_its_rows_at_a_tiny_size(tmp_path: Path, group: str) -> None:
    out = tmp_path / "benchmarks.md"
    env = dict(os.environ, LISTGATE_BENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tiny",
            "--only",
            ",".join(GROUPS[group]),
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
    for name in GROUPS[group]:
        mine = [r for r in rows if r[0] == f"| {TITLES[name]}" or r[0] == f"| {name}"]
        assert mine, f"no row for {name} in:\n{report}"
        for r in mine:
            # a row is a figure or says why there is none; a crash is a defect
            assert r[2].strip(), r
            assert r[5].strip() != "error", f"{name} crashed: {r[2]}\n{done.stderr[-2000:]}"
    if group == "ingest":
        # each acceptance case is measured beside the durable floor, which must have worked
        ingest = [r for r in rows if r[0] == "| live ingest" and "client" in r[1]]
        assert ingest and all("durable floor" in r[6] and "failed" not in r[6] for r in ingest), (
            ingest
        )
    # the table printed on the terminal is the same run
    assert "benchmark" in done.stdout and TITLES[GROUPS[group][0]] in done.stdout
    # a benchmark that needs another's work finds it in its group: none says the other did not run
    assert "did not run in this run" not in report and "did not import it" not in report, report
