"""`listgate status` on PostgreSQL + Redis: reachable services and the Redis queue length."""

from __future__ import annotations

from kombu import Connection

from listgate import status
from listgate.config import Settings


def test_status_on_postgres_and_redis_counts_waiting_tasks(prod_settings: Settings) -> None:
    assert status.broker_queue_lengths(prod_settings.broker_url) == {"celery": 0}
    with Connection(prod_settings.broker_url) as conn:
        queue = conn.SimpleQueue("celery")
        for n in range(3):
            queue.put({"n": n})
        queue.close()
    state = status.collect(prod_settings)
    assert state.ok, state
    text = "\n".join(status.render(state))
    assert "database   ok     postgresql://" in text and "up to date" in text
    assert "broker     ok     redis://" in text and "celery: 3 waiting" in text
