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


def test_decoding_mail_at_debug_logs_nothing_from_mail_parser(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from listgate.mail.parser import parse

    logs.setup(make_settings(tmp_path, LISTGATE_LOG_LEVEL="DEBUG"))
    raw = (
        b"From: a@example.org\r\nMessage-ID: <alt@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/html\r\n\r\n"
        b"<p>hello</p>\r\n--b--\r\n"
    )
    with caplog.at_level(logging.DEBUG):
        assert parse(raw).body_text.strip() == "hello"
    assert [r.name for r in caplog.records if r.name.startswith("mailparser")] == []
