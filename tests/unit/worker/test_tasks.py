"""The tasks as the worker runs them: every task name
has one, transient errors come back later, others fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Task
from celery.exceptions import Retry
from sqlalchemy.exc import OperationalError

from listgate import dispatch
from listgate.config import Settings
from tests.support.config import make_settings
from worker import delivery
from worker.celery_app import make_celery
from worker.tasks import MAX_RETRIES

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"  # refused at once: a transient error


def run_as_worker(task: Task, retries: int, *args: object) -> None:
    """Call task as the worker does: inside its
    request (the retries so far), not called directly.
    """
    task.push_request(
        id=f"test-{retries}",
        retries=retries,
        called_directly=False,
        args=list(args),
        kwargs={},
        delivery_info={"routing_key": "celery"},
    )
    try:
        task(*args)
    finally:
        task.pop_request()


def test_every_task_name_the_core_queues_has_a_task(settings: Settings) -> None:
    names = {
        value
        for key, value in vars(dispatch).items()
        if key.isupper() and isinstance(value, str) and value.startswith("listgate.")
    }
    app = make_celery(settings)
    assert names | {delivery.SEND_CHUNK} <= set(app.tasks)
    assert all(app.tasks[name].acks_late and app.tasks[name].ignore_result for name in names)


def test_a_transient_error_is_retried_later_each_time_after_twice_as_long(tmp_path: Path) -> None:
    app = make_celery(make_settings(tmp_path, LISTGATE_DATABASE_URL=UNREACHABLE))
    task = app.tasks[dispatch.SWEEP_OUTBOX]
    countdowns = []
    for retries in (0, 1, 2, 7):
        with pytest.raises(Retry) as caught:
            run_as_worker(task, retries)
        countdowns.append(caught.value.when)
    assert countdowns == [30, 60, 120, 3600]


def test_a_transient_error_fails_for_good_after_the_last_retry(tmp_path: Path) -> None:
    app = make_celery(make_settings(tmp_path, LISTGATE_DATABASE_URL=UNREACHABLE))
    with pytest.raises(OperationalError):
        run_as_worker(app.tasks[dispatch.SWEEP_OUTBOX], MAX_RETRIES)


def test_any_other_error_fails_at_once_without_a_retry(settings: Settings) -> None:
    app = make_celery(settings)
    with pytest.raises(ValueError, match="Invalid isoformat"):
        run_as_worker(app.tasks[dispatch.SEND_DIGESTS], 0, "not a day")
