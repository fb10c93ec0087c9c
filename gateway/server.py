"""The listening server: aiosmtpd SMTP or LMTP on TCP or a unix socket, with our limits."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.smtp import SMTP

from gateway.beacon import Beacon, gateway_name
from gateway.handler import GatewayHandler
from gateway.limits import trusted_networks
from gateway.loop import ListenerLoop
from gateway.protocol import GatewayLMTP, GatewaySMTP
from gateway.relaysize import CHECK_EVERY, SizeLimit
from gateway.tls import ServerTls
from gateway.writer import GroupWriter
from listgate.archiver import Archiver
from listgate.config import Settings
from listgate.numerals import MAX_PORT, number

log = logging.getLogger(__name__)


class _TcpController(Controller):
    def __init__(self, make: Callable[[], SMTP], **kwargs: Any) -> None:
        self._make = make
        super().__init__(None, **kwargs)

    def factory(self) -> SMTP:
        return self._make()


class _UnixController(UnixSocketController):
    def __init__(self, make: Callable[[], SMTP], **kwargs: Any) -> None:
        self._make = make
        super().__init__(None, **kwargs)

    def factory(self) -> SMTP:
        return self._make()


def parse_listen(value: str, settings: Settings) -> tuple[str, int] | Path:
    """HOST:PORT or unix:/path (default: the configured SMTP address)."""
    if not value:
        return settings.smtp_host, settings.smtp_port
    if value.startswith("unix:"):
        return Path(value[5:])
    host, sep, raw_port = value.rpartition(":")
    port = number(raw_port, MAX_PORT)
    if not sep or port is None:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT or unix:/path")
    return host.strip("[]"), port


class GatewayServer:
    """Start and stop the listener in a background thread (tests and __main__ alike)."""

    def __init__(
        self,
        settings: Settings,
        handler: GatewayHandler,
        *,
        lmtp: bool = False,
        listen: tuple[str, int] | Path | None = None,
        workers: int = 8,
        writers: int = 1,
        size_check_every: float = CHECK_EVERY,
        archiver: Archiver | None = None,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.lmtp = lmtp
        handler.lmtp = lmtp
        handler.limits.trust(trusted_networks(settings.trusted_mtas, lmtp))
        self.listen = listen or (settings.smtp_host, settings.smtp_port)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest")
        handler.executor = self.executor
        # One writer (group commit) whatever the database: see gateway/writer.py.
        self.writer = GroupWriter(
            handler.store_batch,
            threads=writers,
            name="store",
            stages=(handler.begin_batch, handler.finish_batch),
        )
        handler.writer = self.writer
        self.size_limit = SizeLimit(settings, size_check_every)  # follows the outbound relay's SIZE
        self.controller: Controller | UnixSocketController | None = None
        self.tls: ServerTls | None = None  # STARTTLS, when a certificate is configured
        # An archiver in this process (small sites, tests): woken by each spool commit.
        self.archiver = archiver
        self._archiving = threading.Event()
        self._archiver_thread: threading.Thread | None = None
        # its connections and limits, for `listgate status` and /metrics (listgate.gateways)
        self.beacon = Beacon(gateway_name(self.describe()), handler.limits, handler.factory)

    def _protocol(self) -> SMTP:
        cls = GatewayLMTP if self.lmtp else GatewaySMTP
        return cls(
            self.handler,
            max_line=self.settings.max_line_length,
            data_size_limit=self.size_limit.current,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.settings.domain,
            tls_context=self.tls.context() if self.tls is not None else None,
            ident="listgate",
            timeout=self.settings.smtp_timeout,
            # called in the loop's thread; without it aiosmtpd looks the loop up per connection
            loop=asyncio.get_running_loop(),
        )

    def start(self) -> None:
        """Bind and serve; returns once the listener answers."""
        if self.settings.tls_cert:  # a pair that does not load: OSError (ssl.SSLError is one)
            self.tls = ServerTls(self.settings.tls_cert, self.settings.tls_key)
        if isinstance(self.listen, Path):
            if self.listen.exists():
                self.listen.unlink()
            self.controller = _UnixController(
                self._protocol, unix_socket=self.listen, loop=ListenerLoop()
            )
        else:
            host, port = self.listen
            self.controller = _TcpController(
                self._protocol, hostname=host, port=port, loop=ListenerLoop()
            )
        self.size_limit.start()
        self.writer.start()
        if self.archiver is not None:
            self._archiving.clear()
            self._archiver_thread = threading.Thread(
                target=self.archiver.run,
                args=(self._archiving, self.handler.spooled),
                name="archiver",
                daemon=True,
            )
            self._archiver_thread.start()
        self.controller.start()
        if isinstance(self.listen, Path):
            os.chmod(self.listen, 0o660)
        self.beacon.start()
        log.debug(  # debug: `listgate up`'s start-up summary (with the address) fits one screen
            "listening for %s on %s, up to %d connections at once",
            "LMTP" if self.lmtp else "SMTP",
            self.describe(),
            self.handler.limits.max_total,
        )

    def describe(self) -> str:
        """Where we listen, for logs."""
        return (
            f"unix:{self.listen}" if isinstance(self.listen, Path) else "{}:{}".format(*self.listen)
        )

    def stop(self) -> None:
        """Stop listening, then let running ingests finish (they commit; clients retry)."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        self.beacon.stop()
        self.size_limit.stop()
        self.writer.stop()
        self.executor.shutdown(wait=True)
        if self._archiver_thread is not None and self.archiver is not None:
            self._archiving.set()
            self.handler.spooled.set()
            self._archiver_thread.join(30)
            self._archiver_thread = None
            # what is left after that stays spooled for the next start
            self.archiver.drain(timeout=10)
