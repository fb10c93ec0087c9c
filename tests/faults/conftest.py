"""Fixtures of the fault tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A data directory outside pytest's private temp dir (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix="listgate-ro-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
