"""One log format for every listgate process, and the frameworks' chatter kept out of it.

At INFO a person watching `listgate up` sees listgate's own lines (a message accepted,
refused, delivered, deferred, a process restarted); Alembic's migration steps, Celery's
task bookkeeping and werkzeug's request lines show only with LISTGATE_LOG_LEVEL=DEBUG.
Their warnings and errors always show.
"""

from __future__ import annotations

import logging
import os

from listgate.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHATTY = ("alembic", "celery", "kombu", "amqp", "werkzeug", "mail.log", "gunicorn.access")
ROOT_NOTE = (
    "running as root: fine inside a container (its root is confined to it); on a host, "
    "run listgate as an unprivileged user"
)


def setup(settings: Settings) -> None:
    """Configure the root logger once per process; the frameworks' INFO lines only at DEBUG."""
    logging.basicConfig(level=settings.log_level, format=FORMAT)
    logging.getLogger().setLevel(settings.log_level)  # also when a handler was already there
    for name in CHATTY:
        logging.getLogger(name).setLevel(
            logging.NOTSET if settings.log_level == "DEBUG" else logging.WARNING
        )


def running_as_root() -> bool:
    """True when this process runs with uid 0."""
    return hasattr(os, "geteuid") and os.geteuid() == 0
