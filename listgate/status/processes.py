"""The children of a running `listgate up`, as its state file says: a line each, which are down."""

from __future__ import annotations

from typing import Any

from listgate import plurals


def down(processes: dict[str, Any] | None) -> list[str]:
    """Children of `listgate up` not serving right now."""
    return [n for n, c in (processes or {}).items() if c.get("state") != "ready"]


def lines(processes: dict[str, Any] | None) -> list[str]:
    """One line per child of a running `listgate up` (none when `up` is not running here)."""
    lines = []
    for name, child in (processes or {}).items():
        restarts = child.get("restarts", 0)
        history = (
            f"; restarted {plurals.count(restarts, 'time')}, last {child['last_exit']}"
            if restarts or child.get("last_exit")
            else ""
        )
        if child.get("state") == "ready":
            lines.append(f"{name:10} ok     pid {child.get('pid')}{history}")
        elif child.get("state") == "restarting":
            lines.append(
                f"{name:10} DOWN   {child.get('last_exit')}; "
                f"restarting in {child.get('restart_in')} s "
                f"({plurals.count(restarts, 'restart')} so far)"
            )
        else:
            lines.append(f"{name:10} STARTING pid {child.get('pid')}{history}")
    return lines
