"""The Celery app factory; nothing is built at import time (worker/__main__.py builds it once)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from pathlib import Path
from queue import Empty
from typing import Any

from celery import Celery
from celery.schedules import crontab
from kombu.transport import sqlalchemy as kombu_sqla

from listgate import dispatch
from listgate.config import Settings
from listgate.filewatch import FileWatch
from worker.dmarc import TxtResolver

log = logging.getLogger(__name__)

SQLA_SQLITE = "sqla+sqlite:///"
LISTGATE_SQLA = "listgate-sqla"
SWEEP_EVERY = 15.0
RETRY_EVERY = 30.0
MAX_FAILURE_PAUSE = 5.0  # seconds between broker reads while its writes fail


def broker_options(settings: Settings) -> dict[str, Any]:
    """Transport options: on the embedded SQLite broker, writers wait for each other, not fail."""
    if settings.broker_url.startswith(SQLA_SQLITE):
        return {"connect_args": {"timeout": 30}}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # Unacknowledged tasks of a killed worker come back after this long; the outbox
        # sweeper and the delivery recovery normally get there first.
        return {"visibility_timeout": 3600}
    return {}


class SqliteBrokerChannel(kombu_sqla.Channel):
    """Kombu's SQLAlchemy channel, giving its pooled connection back when it fails or closes.

    Kombu's channel keeps one session for its life and never closes it. When a write fails
    (a full disk: SQLITE_FULL) the consumer restarts with a new channel, and the old session
    keeps its connection checked out: after 15 restarts the pool is exhausted ("QueuePool
    limit ... reached") and the worker dies. Here a failed read-and-claim rolls back, the
    session is closed with the channel, and each failure in a row waits a little longer (at
    most MAX_FAILURE_PAUSE s) so an outage is not a busy loop of reconnects.

    Idle, each poll of a queue took the file's write lock (kombu's BEGIN IMMEDIATE), ten times
    a second per queue: the worker idled at 2% of a core, and each poll made a publisher wait.
    A poll now first reads the file's PRAGMA data_version on a connection of its own, which
    changes whenever another connection commits (a publish, a restore): unchanged since the
    queue was found empty, the queue is still empty (read again once a second all the same).
    """

    failures = 0
    _watch: FileWatch | None = None

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        if self._watch is None:
            self._watch = FileWatch(self.session.get_bind().engine.url.database or "")
        quiet, version = self._watch.still_empty(queue)
        if quiet:
            raise Empty()
        try:
            message = super()._get(queue)
        except Empty:
            SqliteBrokerChannel.failures = 0
            self._watch.found_empty(queue, version)
            raise
        except Exception:
            self._drop_session()
            SqliteBrokerChannel.failures += 1
            time.sleep(min(MAX_FAILURE_PAUSE, 0.25 * 2**SqliteBrokerChannel.failures))
            raise
        SqliteBrokerChannel.failures = 0
        self._watch.found_empty(queue, None)
        return message

    def _drop_session(self) -> None:
        """Roll back and close the session, returning its connection to the pool."""
        if self._session is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                self._session.rollback()
            self._session.close()
            self._session = None

    def close(self) -> None:
        """Close the channel and its session."""
        try:
            super().close()
        finally:
            self._drop_session()
            if self._watch is not None:
                self._watch.close()


class SqliteBrokerTransport(kombu_sqla.Transport):
    """Kombu's SQLAlchemy transport polling every 0.1 s instead of 1 s, with SqliteBrokerChannel.

    With prefetch 1 the virtual transport sleeps one polling interval whenever the pool is
    busy, so the interval caps throughput (about concurrency/interval tasks a second). The
    option cannot go through transport_options: kombu hands those to create_engine.
    """

    Channel = SqliteBrokerChannel
    polling_interval = 0.1


def broker_connection_url(settings: Settings) -> str:
    """The URL Celery connects with: the embedded SQLite broker goes through our faster poller."""
    if not settings.broker_url.startswith(SQLA_SQLITE):
        return settings.broker_url
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES.setdefault(LISTGATE_SQLA, "worker.celery_app:SqliteBrokerTransport")
    return LISTGATE_SQLA + "+" + settings.broker_url.split("+", 1)[1]


def prepare_sqlite_broker(url: str) -> None:
    """Create the broker file in WAL mode: producers (gateway, web) and the worker rarely block."""
    path = Path(url[len(SQLA_SQLITE) :])
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic tasks: outbox sweep, retries and recovery, digests, moderators' reminders.

    The digests due (the previous UTC day's, the last complete week's) and the reminders go out
    once a day, at the UTC times of LISTGATE_DIGEST_TIME and LISTGATE_REMINDER_TIME. The
    reminders' run comes again each hour until the end of the UTC day: a run lost with a
    killed worker (the embedded broker never gives its task back) is made good within the
    hour, and a run that went through leaves nothing for the next (once per list and day).
    """
    digest_hour, digest_minute = settings.digest_time
    reminder_hour, reminder_minute = settings.reminder_time
    return {
        "sweep-outbox": {"task": dispatch.SWEEP_OUTBOX, "schedule": SWEEP_EVERY},
        "retry-deferred": {"task": dispatch.RETRY_DEFERRED, "schedule": RETRY_EVERY},
        "send-digests": {
            "task": dispatch.SEND_DIGESTS,
            "schedule": crontab(hour=digest_hour, minute=digest_minute),
        },
        "moderation-reminders": {
            "task": dispatch.SEND_REMINDERS,
            "schedule": crontab(hour=f"{reminder_hour}-23", minute=reminder_minute),
        },
    }


def make_celery(settings: Settings, resolver: TxtResolver | None = None) -> Celery:
    """A Celery app for settings with every listgate task registered."""
    from worker import tasks

    if settings.broker_url.startswith(SQLA_SQLITE):
        prepare_sqlite_broker(settings.broker_url)
    app = Celery("listgate", broker=broker_connection_url(settings), set_as_current=False)
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    tasks.register(app, settings, resolver)
    return app
