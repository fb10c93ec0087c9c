"""A size-limited tmpfs for the full-disk fault tests (mounting needs root)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(mnt: Path, size: str) -> Iterator[str | None]:
    """Mount a tmpfs of `size` (e.g. "24m") at `mnt` for the block; yields None when mounted,
    else why it could not be (this sandbox may forbid mounting), and unmounts at the end.
    """
    mnt.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,  # the caller decides what a sandbox that cannot mount means
    )
    if done.returncode != 0:
        yield done.stderr.strip() or "mount failed"
        return
    try:
        yield None
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
