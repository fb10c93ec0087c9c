"""The results table: printed to the terminal and written into docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

from bench.common import Row

HEADERS = ("benchmark", "case", "result", "ratio", "goal", "verdict", "note")
TEMPLATE = """# Benchmarks

`make bench` (full, long) and `make bench-quick` (about two minutes) run `python -m bench`,
print one table and rewrite the matching results block below. Methods and caveats are at the end.

<!-- bench:full:start -->
_No full run recorded yet._
<!-- bench:full:end -->

<!-- bench:quick:start -->
_No quick run recorded yet._
<!-- bench:quick:end -->
"""


def _cells(row: Row) -> list[str]:
    return [row.bench, row.case, row.value, row.ratio, row.goal, row.verdict, row.note]


def render_table(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    cells = [list(HEADERS)] + [[c.replace("\n", " ") for c in _cells(r)] for r in rows]
    widths = [min(max(len(c[i]) for c in cells), 60 if i != 6 else 80) for i in range(len(HEADERS))]
    lines = []
    for n, line in enumerate(cells):
        lines.append(
            "  ".join(c[: widths[i]].ljust(widths[i]) for i, c in enumerate(line)).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(
    mode: str, info: dict[str, str], rows: list[Row], notes: list[str], argv: str
) -> str:
    """The results block for docs/benchmarks.md."""
    title = {
        "full": "Full run (`make bench`)",
        "quick": "Quick run (`make bench-quick`)",
        "soak": "Soak (`make soak`)",
    }.get(mode, f"{mode} run")
    out = [f"## {title}", "", f"`python -m bench {argv}`".replace(" `", "`"), ""]
    out += [f"- **{k}**: {v}" for k, v in info.items()]
    out += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in rows:
        out.append(
            "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in _cells(r)) + " |"
        )
    if notes:
        out += ["", *[f"- {n}" for n in notes]]
    return "\n".join(out)


def write_report(
    path: Path, mode: str, info: dict[str, str], rows: list[Row], notes: list[str], argv: str
) -> None:
    """Replace this mode's block in the report (creating the report from a template if needed)."""
    text = path.read_text() if path.exists() else TEMPLATE
    start, end = f"<!-- bench:{mode}:start -->", f"<!-- bench:{mode}:end -->"
    block = f"{start}\n{render_markdown(mode, info, rows, notes, argv)}\n{end}"
    if start in text and end in text:
        text = re.sub(
            re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.DOTALL
        )
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
