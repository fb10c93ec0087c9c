"""The largest message the gateway takes: LISTGATE_MAX_MESSAGE_SIZE, lowered to what the outbound
relay takes.

A post the relay refuses for its size is accepted here and then fails for every subscriber (a
failed post, see worker/bounces.py). So when LISTGATE_OUTBOUND is an SMTP relay the gateway
asks its EHLO SIZE at start and every CHECK_EVERY seconds, and advertises and enforces that,
less HEADROOM for the list headers each copy gets; never more than its own setting. A relay
that cannot be asked leaves the last limit in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from listgate.config import Settings
from listgate.outbound import advertised_size

log = logging.getLogger(__name__)

CHECK_EVERY = 600.0  # seconds
HEADROOM = 16 * 1024  # bytes of list headers (List-*, Archived-At, Reply-To...) added to each copy


class SizeLimit:
    """The current limit (`current`), kept up to date by a background thread while started."""

    def __init__(
        self,
        settings: Settings,
        check_every: float = CHECK_EVERY,
        probe: Callable[[str], int | None] = advertised_size,
    ) -> None:
        self.configured = self.current = settings.max_message_size
        self.outbound, self.check_every, self._probe = settings.outbound, check_every, probe
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> int:
        """Ask the relay now; the limit in force afterwards."""
        advertised = self._probe(self.outbound)
        if advertised is None:
            return self.current
        limit = self.configured
        if advertised:
            limit = min(self.configured, max(advertised - HEADROOM, advertised // 2))
        if limit != self.current:
            log.info(
                "message size limit now %d bytes (the outbound relay accepts %s, "
                "LISTGATE_MAX_MESSAGE_SIZE is %d)",
                limit,
                advertised or "any size",
                self.configured,
            )
        self.current = limit
        return limit

    def start(self) -> None:
        """Check once now, then every check_every seconds (only for an SMTP relay)."""
        if self.outbound.startswith("maildir:"):
            return
        self.check()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="relay-size", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.check_every):
            try:
                self.check()
            except Exception:
                log.exception("checking the outbound relay's size limit failed")

    def stop(self) -> None:
        """End the background checks."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
