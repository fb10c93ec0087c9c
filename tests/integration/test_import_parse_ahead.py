"""`listgate import`'s parsing process parses on while the importer archives: the batches it is
handed are parsed without the importer taking each back first, and a batch it answered is not
lost when it dies afterwards."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from listgate.mail.parser import parse
from listgate.parse_process import ParseAhead

pytestmark = pytest.mark.integration


def _batch(n: int) -> list[bytes]:
    body = "".join(f"Line {i} of the message.\n> an older line\n" for i in range(40))
    return [
        (
            f"From: user{n}-{i}@example.org\nSubject: Batch {n}\nMessage-ID: <b{n}.{i}@x>\n"
            f"Date: Mon, 2 Mar 2026 10:{i % 60:02d}:00 +0000\n\n{body}"
        ).encode()
        for i in range(200)
    ]


def test_batches_handed_ahead_are_parsed_while_none_is_taken_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three batches handed over, none taken back: the parsing process answers all three (a
    reply nobody reads yet does not stop it before the next batch). Killed then, every batch
    still comes back as it parsed it, none parsed again by the importer."""
    batches = [_batch(n) for n in range(3)]
    ahead = ParseAhead()
    try:
        for raws in batches:
            ahead.submit(raws)
        deadline = time.monotonic() + 60
        while ahead._replies.qsize() < len(batches) and time.monotonic() < deadline:
            time.sleep(0.05)
        answered = ahead._replies.qsize()
        os.kill(ahead.process.pid, signal.SIGKILL)
        ahead.process.wait(timeout=30)
        with caplog.at_level(logging.WARNING, logger="listgate.parse_process"):
            taken = [ahead.take() for _ in batches]
    finally:
        ahead.close()
    assert answered == len(batches), f"{answered} of {len(batches)} batches parsed ahead"
    assert "failed" not in caplog.text, caplog.text
    for raws, parsed in zip(batches, taken, strict=True):
        assert parsed == [parse(raw) for raw in raws]
    assert ahead.process.poll() is not None, "the parsing process outlived close()"
