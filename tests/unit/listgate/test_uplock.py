"""The data dir's lock of `listgate up`, in this process: what a starting `up` meets besides
another `up` (a `listgate status` probing it, an `up` that has not written its pid yet).

The journeys with real `up` processes (refused, killed, side by side) are in test_supervisor.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from listgate import uplock
from listgate.supervisor import read_state, state_file


def test_a_status_probing_the_lock_as_up_starts_does_not_make_it_refuse(tmp_path: Path) -> None:
    path = uplock.lock_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.touch()
    probe = os.open(path, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what held() does, caught in the middle
    threading.Timer(0.3, os.close, (probe,)).start()
    with uplock.hold(tmp_path):
        assert uplock.held(tmp_path) is True
        assert path.read_text() == f"{os.getpid()} {uplock.start_time(os.getpid())}\n"
    assert uplock.held(tmp_path) is False
    assert path.read_text() == "", "a stopped `up` left its pid behind"


def test_an_up_that_has_not_written_its_pid_yet_is_named_as_starting(tmp_path: Path) -> None:
    path = uplock.lock_file(tmp_path)
    path.parent.mkdir(parents=True)
    other = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with (
            pytest.raises(uplock.AlreadyRunning, match=r"\(starting\): stop it first \(Ctrl-C"),
            uplock.hold(tmp_path),
        ):
            pytest.fail("a second holder got the lock")
        assert uplock.held(tmp_path) is True
    finally:
        os.close(other)
    assert uplock.held(tmp_path) is False


def test_no_lock_file_means_the_lock_cannot_tell(tmp_path: Path) -> None:
    assert uplock.held(tmp_path) is None


def test_status_does_not_take_a_process_that_got_a_killed_ups_pid_for_that_up(
    tmp_path: Path,
) -> None:
    """While a killed `up`'s services hold the lock, its pid may already be another process's."""
    sleep = subprocess.Popen(["sleep", "600"])
    try:
        state = state_file(tmp_path)
        with uplock.hold(tmp_path):  # the killed `up`'s services, still stopping
            state.write_text(json.dumps({"pid": sleep.pid, "started": "1", "children": {}}))
            assert read_state(state) is None, "a reused pid shown as a running `up`"
            started = uplock.start_time(sleep.pid)
            state.write_text(json.dumps({"pid": sleep.pid, "started": started, "children": {}}))
            assert read_state(state) is not None, "the `up` that wrote the state not recognised"
    finally:
        sleep.kill()
        sleep.wait()
