"""The gateway's report of itself (listgate.gateways): its open connections and its limits.

A thread of its own looks at the count a few times a second and sets the gateway's rows when it
changed, and every HEARTBEAT seconds when not (so a gateway that died is seen to be silent); its
first report replaces that of a gateway killed on the same host and address before it. It
never touches the event loop, and a write that waits for the database (SQLite's write lock, held
by the archiver a batch at a time) holds up nothing but the next report.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from gateway.limits import ClientLimits
from listgate import gateways
from listgate.db import transaction

log = logging.getLogger(__name__)

LOOK_EVERY = 0.5  # seconds between two looks at the count (at most 2 writes a second)
LAST_PAUSE = 60.0  # seconds between two tries at most, while the database refuses


def gateway_name(listening: str) -> str:
    """This gateway's name in reports: host/pid/address (unique while it runs)."""
    return f"{socket.gethostname()}/{os.getpid()}/{listening}"[:128]


class Beacon:
    """Reports the connections open in limits under name, from start() to stop()."""

    def __init__(self, name: str, limits: ClientLimits, factory: sessionmaker[Session]) -> None:
        self.name = name
        self.limits = limits
        self.factory = factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Report now and from now on, in a thread of its own."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="beacon", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting and remove the report (a gateway stopped is not shown)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        try:
            with transaction(self.factory) as session:
                gateways.forget(session, self.name)
        except Exception as exc:  # noqa: BLE001 - shown as silent until replaced or forgotten
            log.warning("could not remove this gateway's report of its connections: %s", exc)

    def _run(self) -> None:
        said: int | None = None  # the count last written
        due = 0.0  # when to write even if the count did not change
        pause, failing = 1.0, False
        while not self._stop.wait(LOOK_EVERY if said is not None or failing else 0):
            now, count = time.monotonic(), self.limits.total
            if now < due and (failing or count == said):
                continue
            try:
                self._report(count, first=said is None and not failing)
            except Exception as exc:  # noqa: BLE001 - a report never stops the gateway
                if not failing:
                    log.warning("could not report this gateway's connections: %s", exc)
                failing, due = True, now + pause
                pause = min(pause * 2, LAST_PAUSE)
                continue
            if failing:
                log.info("reporting this gateway's connections again")
            said, due, pause, failing = count, now + gateways.HEARTBEAT, 1.0, False

    def _report(self, count: int, first: bool) -> None:
        now = datetime.now(UTC)
        with transaction(self.factory) as session:
            if first:
                gone = gateways.forget_replaced(session, self.name)
                if gone:
                    log.info(
                        "replaced the report of the gateway that listened here before: %s", gone
                    )
            limits = self.limits
            gateways.report(
                session, self.name, count, limits.max_total, limits.max_per_network, now
            )
