"""File permissions that bind listgate's processes in the fault tests, also when run as root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support.services import require

DROP_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def unprivileged() -> list[str]:
    """A command prefix under which file permissions bind a process (root keeps its uid only)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        require(
            "setpriv",
            "running as root, and util-linux's setpriv is needed to drop CAP_DAC_OVERRIDE",
        )
    return DROP_OVERRIDE


def chmod_databases(data_dir: Path, mode: int) -> None:
    """Set the mode of the archive, the spool file beside it and their -wal and -shm files."""
    for path in data_dir.glob("listgate*.sqlite3*"):
        path.chmod(mode)
