"""The background sender: the 250 does not wait for
the broker, and a broker failure loses nothing.
"""

from __future__ import annotations

import threading

import pytest

from gateway.broker import BackgroundSender
from listgate.models import OutboxEntry


def _entries(*ids: int) -> list[OutboxEntry]:
    return [OutboxEntry(id=i, kind="listgate.fanout", ref_id=i, payload="{}") for i in ids]


def test_entries_are_sent_in_the_background_in_order_and_close_flushes() -> None:
    gate, got = threading.Event(), []

    def send(batch: list[OutboxEntry]) -> int:
        gate.wait(10)
        got.append([e.id for e in batch])
        return len(batch)

    sender = BackgroundSender(send)
    assert sender(_entries(1)) == 1  # returns before the broker answered
    sender(_entries(2, 3))
    sender(_entries(4))
    gate.set()
    sender.close(10)
    assert [i for batch in got for i in batch] == [1, 2, 3, 4]


def test_a_failing_send_is_logged_and_the_next_batch_still_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[int] = []

    def send(batch: list[OutboxEntry]) -> int:
        if batch[0].id == 1:
            raise ConnectionError("broker down")
        got.extend(e.id for e in batch)
        return len(batch)

    sender = BackgroundSender(send, max_batch=1)
    sender(_entries(1))
    sender(_entries(2))
    sender.close(10)
    assert got == [2]
    assert "left for the sweeper" in caplog.text
