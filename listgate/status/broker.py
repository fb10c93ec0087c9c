"""The broker's side of `listgate status`: tasks waiting in each queue."""

from __future__ import annotations

import math
from typing import Any, Protocol, cast

BROKER_QUEUES = ("celery",)


class _Channel(Protocol):
    def queue_declare(self, queue: str, passive: bool) -> Any: ...

    def close(self) -> None: ...


def broker_queue_lengths(
    broker_url: str, queues: tuple[str, ...] = BROKER_QUEUES, timeout: float = 3.0
) -> dict[str, int]:
    """Messages waiting in each broker queue; raises when the broker cannot be reached."""
    from kombu import Connection  # the transport library only; the core never imports Celery

    lengths: dict[str, int] = {}
    options = {"socket_timeout": timeout} if broker_url.startswith("redis") else {}
    with Connection(broker_url, connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=math.ceil(timeout))
        for name in queues:
            # A transport's own channel class (declared as the abstract StdChannel).
            channel = cast(_Channel, conn.channel())
            try:
                lengths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except conn.channel_errors:
                lengths[name] = 0  # an empty Redis queue has no key: nothing waits
            finally:
                channel.close()
    return lengths
