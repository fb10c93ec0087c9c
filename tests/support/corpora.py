"""The real-mail corpora for tests, reached only through LISTGATE_TEST_CORPORA.

`.ci/run` points the variable at ../shared/corpora when it is there. Without it a test that needs
the corpora skips with one line; under CI=true it fails instead (the corpora are part of the CI
environment). The corpora are read where they lie, streamed, never copied into the repository.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest

from listgate.importer import mbox_messages, open_stream
from tests.support.services import in_ci

VARIABLE = "LISTGATE_TEST_CORPORA"


def available(*parts: str) -> Path | None:
    """The path of parts inside the corpora, or None
    when they are not there (a failure under CI=true).
    """
    root = os.environ.get(VARIABLE, "")
    path = Path(root, *parts) if root else None
    if path is not None and path.exists():
        return path
    if in_ci():
        pytest.fail(
            f"the real-mail corpora are part of the CI environment, but {_why(root, path)}",
            pytrace=False,
        )
    return None


def corpus(*parts: str) -> Path:
    """The path of parts inside the corpora; skips
    the test with one line when they are not there.
    """
    path = available(*parts)
    if path is None:
        root = os.environ.get(VARIABLE, "")
        pytest.skip(
            f"real-mail corpora not available ({_why(root, Path(root, *parts) if root else None)})"
        )
    return path


def _why(root: str, path: Path | None) -> str:
    return f"{VARIABLE} is not set" if not root else f"{path} does not exist"


def linux_man_path() -> Path:
    """The linux-man mboxrd archive (xz)."""
    return corpus("linux-man", "linux-man.mbox.xz")


def linux_man(limit: int) -> Iterator[bytes]:
    """The first `limit` messages of the linux-man
    archive, read by the importer's own mbox reader.
    """
    with open(linux_man_path(), "rb") as raw:
        yield from islice(mbox_messages(open_stream(raw)), limit)
