"""One log format; the frameworks' INFO chatter only
at LISTGATE_LOG_LEVEL=DEBUG, their warnings always.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from listgate import logs
from tests.support.config import make_settings


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Each test configures logging from scratch and leaves it as it found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logs.CHATTY}
    root.handlers = []
    yield
    root.handlers, root.level = handlers, level
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_framework_info_lines_are_hidden_at_info_but_their_warnings_show(tmp_path: Path) -> None:
    logs.setup(make_settings(tmp_path))
    for name in ("alembic.runtime.migration", "celery.beat", "werkzeug", "kombu"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
    assert logging.getLogger("listgate.up").isEnabledFor(logging.INFO)
    assert logging.getLogger("worker.delivery").isEnabledFor(logging.INFO)


def test_at_debug_everything_shows(tmp_path: Path) -> None:
    logs.setup(make_settings(tmp_path, LISTGATE_LOG_LEVEL="DEBUG"))
    for name in ("alembic.runtime.migration", "celery.beat", "werkzeug"):
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name
