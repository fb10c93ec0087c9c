"""Each checkout its own pytest base temp, so that test runs of two checkouts (CI in one
worktree, a helper's tests in another) do not delete each other's temp dirs.

pytest numbers a run's base temp dir under one root per user (/tmp/pytest-of-USER) and keeps the
last three runs there, to look into after a failure: with every checkout sharing that root, any
three runs anywhere removed a failed run's dirs. Here the root is /tmp/lgt-HASH (HASH from the
checkout's path: short, since the tests make unix sockets under it, whose paths hold 107 bytes),
through pytest's PYTEST_DEBUG_TEMPROOT; pytest then keeps three runs per checkout, and the roots
of checkouts that no longer exist are removed when a run starts. `--basetemp` still wins.

Under pytest-xdist a worker's base temp would be the run's own plus `popen-gwN`, ten bytes more
than a serial run's paths and too many for the sockets of the deepest tests; each worker takes
ROOT/pytest-N-gwN instead (shorter than a serial run's ROOT/pytest-of-USER/pytest-N), and goes
with its run when pytest removes that run's directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

PREFIX = "lgt-"


@pytest.hookimpl(tryfirst=True)  # before pytest's own tmp_path plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    """Point pytest's base temp at this checkout's own root (read lazily, at the first tmp_path)."""
    root = temp_root(config.rootpath)
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        given = Path(config.option.basetemp)  # RUN/popen-gwN, RUN the run's base temp
        if given.parent.parent.parent == root:  # pytest's own numbering under this root
            config.option.basetemp = str(root / f"{given.parent.name}-{worker['workerid']}")
            sweep_workers(root)  # the run is numbered now, and the oldest of four removed
        return
    sweep(root.parent)
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(root)  # the services' tests inherit it too


def sweep_workers(root: Path) -> list[Path]:
    """Remove the workers' base temps (ROOT/pytest-N-gwK) of runs pytest no longer keeps."""
    runs = {p.name for p in root.glob("pytest-of-*/pytest-*")}
    removed = []
    for path in root.glob("pytest-*-gw*"):
        if path.name.rsplit("-", 1)[0] not in runs:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def temp_root(checkout: Path) -> Path:
    """The root under which pytest numbers checkout's runs (made if missing)."""
    digest = hashlib.sha256(str(checkout.resolve()).encode()).hexdigest()[:8]
    root = Path(tempfile.gettempdir()) / f"{PREFIX}{digest}"
    root.mkdir(mode=0o700, exist_ok=True)
    (root / "checkout").write_text(f"{checkout.resolve()}\n")  # whose it is, for sweep()
    return root


def sweep(tmp: Path) -> list[Path]:
    """Remove the roots in tmp of checkouts that no longer exist; those removed."""
    removed = []
    for root in tmp.glob(f"{PREFIX}*"):
        with contextlib.suppress(OSError):
            checkout = Path((root / "checkout").read_text().strip())
            if root.stat().st_uid == os.geteuid() and not checkout.exists():
                shutil.rmtree(root)
                removed.append(root)
    return removed
