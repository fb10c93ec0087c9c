"""bench.gateway_profile's CPU per thread and per process (Linux /proc): a busy thread's time is
counted under its own name; another process's (the archiver's, the server's) by its number."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from bench.gateway_profile import _cpu_of, _thread_cpu


def test_a_busy_thread_is_counted_under_its_name_without_its_number() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    before = _thread_cpu()
    worker = threading.Thread(target=spin, name="store-7", daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while _thread_cpu().get("store", 0.0) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        spent = _thread_cpu()
    finally:
        stop.set()
        worker.join(10)
    assert "store" not in before
    assert spent["store"] >= 0.05  # five kernel ticks of its own
    assert "store-7" not in spent


def test_another_process_is_counted_while_it_runs_and_an_ended_one_is_skipped() -> None:
    busy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 30\nwhile time.process_time() < end: pass",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while _cpu_of([busy.pid]) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cpu_of([busy.pid]) >= 0.05  # five kernel ticks of its own
    finally:
        busy.kill()
        busy.wait()
    assert _cpu_of([busy.pid]) == 0.0  # gone: nothing to count, no error
