"""Handing generated mail to the worker: recorded in the outbox, enqueued after the commit."""

from __future__ import annotations

import logging

from listgate import dispatch
from listgate.models import OutboxEntry
from webarchive.context import resources

log = logging.getLogger(__name__)


def enqueue(entries: list[OutboxEntry]) -> None:
    """Send committed outbox entries by task name; if the broker is down the sweeper resends them."""
    if entries:
        dispatch.enqueue(resources().sender, entries)
