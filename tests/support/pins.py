"""Points where a test's worker stops and waits to be killed (SIGKILL), loaded into the worker
with `-I tests.support.pins` (Celery's --include) when LISTGATE_TEST_PINS names a directory.

The relay's stall (tests/support/sink.py) holds a worker at a step of its SMTP session; these
hold it at the steps between the database and the broker, which no outside party sees:

- COMMIT: the task's first transaction has done its work and is about to commit (a kill
  rolls it back);
- PUBLISH: the task committed and is about to hand the work it queued to the broker (a kill
  leaves that work to the sweeper).

A test arms a pin with arm(directory, point, task name); the first pool process of the worker
to reach that point in that task takes the pin (an atomic rename: one winner) and sleeps until
it is killed. A pin is used once: the worker started again after the kill runs through.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

COMMIT, PUBLISH = "commit", "publish"
ENV = "LISTGATE_TEST_PINS"


def arm(directory: Path, point: str, task: str) -> Path:
    """Hold the next `task` at `point`; the path that appears once a worker is held there."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / point).write_text(task)
    return directory / f"{point}.reached"


def _hold(point: str) -> None:
    """Sleep until killed if `point` is armed for the task this process runs."""
    from celery._state import get_current_task

    directory = Path(os.environ[ENV])
    armed = directory / point
    try:
        task = armed.read_text()
    except FileNotFoundError:
        return
    running = get_current_task()
    if running is None or running.name != task:
        return
    try:
        armed.rename(directory / f"{point}.taken")
    except FileNotFoundError:  # another pool process took it
        return
    (directory / f"{point}.reached").write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def _install() -> None:
    from sqlalchemy import Engine, event

    from worker.context import WorkerContext

    def before_commit(conn: Any) -> None:
        _hold(COMMIT)

    event.listen(Engine, "commit", before_commit)
    enqueue = WorkerContext.enqueue

    def held_enqueue(self: WorkerContext, entries: list[Any]) -> None:
        if entries:
            _hold(PUBLISH)
        enqueue(self, entries)

    WorkerContext.enqueue = held_enqueue  # type: ignore[method-assign]


if os.environ.get(ENV):
    _install()
