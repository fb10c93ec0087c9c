"""`listgate import`'s parsing process parses on while the importer archives: the batches it is
handed are parsed without the importer taking each back first, and a batch it answered is not
lost when it dies afterwards."""

from __future__ import annotations

import gc
import logging
import os
import signal
import time

import pytest

from listgate.mail.parser import parse
from listgate.parse_process import DERIVED, ParseAhead

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


def test_what_a_message_alone_tells_comes_worked_out_from_the_parsing_process() -> None:
    """The hash, normalized subject and thread keys archiving reads of each message are worked
    out in the parsing process: the messages the importer takes back hold them already (it
    computes none of them), the same as a parse in the importer gives."""
    raws = _batch(7)
    raws[1] = (
        b"From: b@example.org\nSubject: Re: [list]  Batch   Seven\nMessage-ID: <r1@x>\n"
        b"In-Reply-To: <b7.0@x>\nReferences: <b7.0@x> <junk> <b7.0@x>\n\nA reply.\n"
    )
    ahead = ParseAhead()
    try:
        ahead.submit(raws)
        taken = ahead.take()
    finally:
        ahead.close()
    for raw, message in zip(raws, taken, strict=True):
        assert message is not None
        computed_here = [n for n in DERIVED if n not in vars(message)]
        assert not computed_here, f"left to the importer: {computed_here}"
        here = parse(raw)
        assert [getattr(message, n) for n in DERIVED] == [getattr(here, n) for n in DERIVED]
    assert taken[1] is not None
    assert taken[1].subject_norm == "batch seven"
    assert taken[1].thread_keys.named == [("b7.0@x", 1)]


def test_a_parsed_batch_is_taken_back_without_the_collectors_passes() -> None:
    """A reply is some 30 new objects a message, none of them garbage: unpickled with the cyclic
    collector counting them, it ran a pass every 700 (each pass of the older generations a pass
    over the importer's whole archive of objects: 14 here); now the count paused while it is
    unpickled is one pass after, and the messages rebuilt from it one or two more."""
    fields = "".join(f"Received: from relay{j}.example.org by mx.example.org\n" for j in range(12))
    raws = [raw.replace(b"Subject:", fields.encode() + b"Subject:", 1) for raw in _batch(7)]
    raws += [raw.replace(b"Batch 7", b"Batch 8") for raw in raws]
    passes = 0

    def count(phase: str, _info: dict[str, int]) -> None:
        nonlocal passes
        passes += phase == "start"

    ahead = ParseAhead()
    try:
        ahead.submit(raws)
        deadline = time.monotonic() + 60
        while ahead._replies.qsize() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        gc.callbacks.append(count)
        try:
            parsed = ahead.take()
        finally:
            gc.callbacks.remove(count)
    finally:
        ahead.close()
    assert parsed == [parse(raw) for raw in raws]
    assert passes <= 3, f"the cyclic collector ran {passes} passes while a batch was taken back"
