"""The group writer: waiting jobs share one write; each client gets its own result or error."""

from __future__ import annotations

import threading

import pytest

from gateway.writer import GroupWriter, WriterStopped


def test_jobs_waiting_together_are_written_together_and_answered_each() -> None:
    gate, batches = threading.Event(), []

    def write(jobs: list[int]) -> list[object]:
        gate.wait(10)
        batches.append(list(jobs))
        return [ValueError(f"bad {j}") if j == 3 else j * 10 for j in jobs]

    w: GroupWriter[int, int] = GroupWriter(write)
    w.start()
    try:
        futures = [w.submit(j) for j in range(5)]
        gate.set()
        assert [f.result(10) for f in futures[:3]] + [futures[4].result(10)] == [0, 10, 20, 40]
        with pytest.raises(ValueError, match="bad 3"):
            futures[3].result(10)
    finally:
        w.stop(10)
    assert sorted(j for b in batches for j in b) == [0, 1, 2, 3, 4]
    assert len(batches) <= 2  # the first job may start alone; the rest waited and went together


def test_a_failed_write_fails_every_job_of_the_batch_and_the_writer_goes_on() -> None:
    calls = []

    def write(jobs: list[str]) -> list[object]:
        calls.append(jobs)
        if "commit-fails" in jobs:
            raise OSError("disk full")
        return [j.upper() for j in jobs]

    w: GroupWriter[str, str] = GroupWriter(write, max_batch=1)
    w.start()
    try:
        with pytest.raises(OSError, match="disk full"):
            w.submit("commit-fails").result(10)
        assert w.submit("next").result(10) == "NEXT"
    finally:
        w.stop(10)


def test_a_stopped_writer_refuses_at_once() -> None:
    w: GroupWriter[int, int] = GroupWriter(list)
    with pytest.raises(WriterStopped):
        w.submit(1).result(1)
    w.start()
    assert w.submit(2).result(10) == 2
    w.stop(10)
    with pytest.raises(WriterStopped):
        w.submit(3).result(1)
