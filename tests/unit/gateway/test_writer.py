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


def test_a_prepare_step_runs_while_the_writer_commits_and_fails_jobs_alone() -> None:
    committing, go_on = threading.Event(), threading.Event()
    prepared: list[list[int]] = []
    written: list[list[int]] = []

    def prepare(jobs: list[int]) -> list[object]:
        prepared.append(list(jobs))
        if prepare_crash in jobs:
            raise RuntimeError("look-ups failed")
        return [KeyError(j) if j == 13 else j + 100 for j in jobs]

    def write(jobs: list[int]) -> list[object]:
        written.append(list(jobs))
        if 100 in jobs:  # the first job: hold the "commit" until the next batch is prepared
            committing.set()
            go_on.wait(10)
        return [j * 2 for j in jobs]

    prepare_crash = 99
    w: GroupWriter[int, int] = GroupWriter(write, prepare=prepare)
    w.start()
    try:
        first = w.submit(0)
        assert committing.wait(10)
        later = [w.submit(j) for j in (1, 13, 2)]
        # prepared while the first one is still being written
        deadline = threading.Event()
        for _ in range(500):
            if sum(len(b) for b in prepared) == 4:
                break
            deadline.wait(0.01)
        assert prepared == [[0], [1, 13, 2]] and written == [[100]]
        with pytest.raises(KeyError):  # failed in prepare: answered at once, alone
            later[1].result(10)
        go_on.set()
        assert first.result(10) == 200
        assert [later[0].result(10), later[2].result(10)] == [202, 204]
        with pytest.raises(RuntimeError, match="look-ups failed"):
            w.submit(prepare_crash).result(10)
        queued = [w.submit(j) for j in range(3, 6)]
    finally:
        w.stop(10)
    # stop writes what was queued, through both steps
    assert [f.result(1) for f in queued] == [206, 208, 210]
    assert written[1] == [101, 102]  # the prepared jobs of one batch, written together
