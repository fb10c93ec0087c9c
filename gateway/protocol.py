"""The gateway's SMTP and LMTP sessions: aiosmtpd's protocol with our limits and answers."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP

from gateway.data import OVER_BUDGET, READER_LIMIT, Incoming
from gateway.handler import GatewayHandler, client_address
from gateway.hooks import Introspected
from gateway.limits import network_of
from gateway.paths import plain_path
from listgate.mail.shape import dot_line_with_bare_end

log = logging.getLogger(__name__)


class _Guarded(Introspected, SMTP):
    """Per-client connection limit, configured line length, enhanced status codes.

    The stream reader's limit is READER_LIMIT, not the configured line length: what asyncio
    buffers for a connection stays small, and a long DATA line is held within the memory budget
    (gateway/data.py). A command line longer than max_line bytes gets 421 and the connection is
    closed; a shorter one over aiosmtpd's command limits, 500 once it ends.
    """

    handler: GatewayHandler
    smuggled_dot = False  # set during DATA: a '.' line ended by a bare CR or LF was received
    in_data = False  # the DATA reader reads what comes (its own limits), not the command watch
    unended = 0  # bytes received since the last LF outside DATA: the command line so far

    def __init__(self, handler: GatewayHandler, *, max_line: int, **kwargs: Any) -> None:
        # SMTP.__init__ sizes its stream reader from this, so it must be set first.
        self.line_length_limit = READER_LIMIT
        self.max_line = max_line
        # aiosmtpd's is a dict of the class, which every connection's EHLO raised and every new
        # connection cleared: each connection has its own.
        self.command_size_limits = _command_limits()
        super().__init__(handler, **kwargs)

    async def smtp_EHLO(self, hostname: str) -> None:
        """aiosmtpd's EHLO, which raises MAIL's limit for the extensions it names: from the base
        again at each EHLO (it adds up, 36 bytes an EHLO, without end)."""
        self.command_size_limits.clear()
        await super().smtp_EHLO(hostname)

    def data_received(self, data: bytes) -> None:
        """Hand the bytes to the stream reader, watching how long the command line grows."""
        if not self.in_data:
            end = data.rfind(b"\n")
            if end < 0:
                self.unended += len(data)
                longest = self.unended
            else:  # the line that ends here began in earlier receives
                longest = self.unended + data.find(b"\n")
                self.unended = len(data) - end - 1
            if max(longest, self.unended) > self.max_line:
                self._endless_command()
                return
        super().data_received(data)

    def _endless_command(self) -> None:
        """421 and close: a command line longer than any line may be (what came is dropped).

        aiosmtpd would read it to its end, for as long as the client sends, to answer 500.
        """
        transport = self.transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            return
        reply = (
            f"421 4.5.2 Line too long: a command line went on past {self.max_line} bytes, "
            "closing the connection"
        )
        self._refused("command-too-long", reply, at_data=False)
        transport.write(reply.encode() + b"\r\n")
        transport.close()

    async def _handle_client(self) -> None:
        limits = self.event_handler.limits
        client = self._client
        over = limits.connect(client)
        if over:
            self._refuse_connection(over)
            return
        try:
            await super()._handle_client()
        finally:
            limits.disconnect(client)

    def _refuse_connection(self, over: str) -> None:
        """421 for the greeting, not waited for, and close (counted): over the gateway's limit,
        the client's network's share of it, or the client's own."""
        limits, client = self.event_handler.limits, self._client
        if over == "too-many-connections":
            if limits.noted("full"):
                log.warning(
                    "refusing connections: %d open, the limit (LISTGATE_MAX_CONNECTIONS) is %d",
                    limits.total,
                    limits.max_total,
                )
        elif over == "network-connections":
            network = network_of(client)
            if limits.noted(network):  # a network's many addresses: a line a minute
                log.warning(
                    "refusing connections from %s: %d open, its share "
                    "(LISTGATE_MAX_CONNECTIONS_PER_NETWORK) is %d",
                    network,
                    limits.networks(client),
                    limits.max_per_network,
                )
        else:
            log.warning(
                "refused a connection from %s: %d already open", client, limits.max_connections
            )
        self.event_handler.count_refusal_soon(over)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(limits.refusal(over, client).encode() + b"\r\n")  # type: ignore[attr-defined]
        self._close()

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, the message read into one buffer within the memory budget
        (gateway/data.py).

        The lines are also watched, in runs, before they are dot-unstuffed: "CRLF . LF" would
        otherwise arrive as an innocent bare LF (shape.dot_line_with_bare_end), and the handler
        refuses it like the other smuggling shapes instead of storing it.
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        if envelope is None or not envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        self.in_data, self.smuggled_dot = True, False
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        assert self.data_size_limit is not None  # GatewayServer._protocol always sets one
        incoming = Incoming(
            self.event_handler.budget,
            self._client,
            self.data_size_limit,
            self.max_line,
            self._watch,
        )
        try:
            await incoming.read(self._reader)
            if incoming.problem:
                await self._data_refused(incoming.problem)
                return
            envelope.original_content = envelope.content = incoming.content()
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)
        finally:
            incoming.release()
            self.in_data, self.unended = False, 0

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's reading of a MAIL/RCPT path, the plain shape read by a regular expression.

        The email package's parser behind aiosmtpd's reading crashes on some malformed paths
        ('"', 'a@', '<a@[', ...: IndexError, AttributeError, UnboundLocalError), which aiosmtpd
        would answer "500 Error: (IndexError) ...". Such a path is unreadable like those the
        parser refuses: (None, None), answered "553 5.1.3 Error: malformed address".
        """
        plain = None if self.local_part_limit else plain_path(arg)
        if plain is not None:
            return plain
        try:
            return super()._getaddr(arg)
        except Exception:  # noqa: BLE001 - any crash of the parser on a client's text
            log.info("unreadable path from %s: %r", self._client or "local", arg[:200])
            return None, None

    @property
    def _client(self) -> str:
        """The client's IP address ('' for a unix socket peer or before the session starts)."""
        return client_address(self.session) if self.session is not None else ""

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _watch(self, lines: bytes) -> None:
        if dot_line_with_bare_end(lines):
            self.smuggled_dot = True

    async def _data_refused(self, problem: str) -> None:
        """Answer a message that broke a limit while it came in (over the budget: 421 and close)."""
        if problem == "over-budget":
            log.warning(
                "closing a connection from %s: %s",
                self._client or "local",
                "DATA over the memory budget",
            )
            await self.push(self._refused("over-budget", OVER_BUDGET, at_data=False))
            self._close()
            return
        if problem == "too-big":
            reply = self._too_big()
        else:
            reply = f"552 5.3.4 Refused: a line longer than {self.max_line} bytes"
        await self.push(self._refused(problem, reply, at_data=True))
        self._set_post_data_state()

    def _timeout_cb(self) -> None:
        """Say why before closing a connection that was silent (or slow in DATA) too long."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            log.info("closing an idle connection from %s", self._client or "local")
            transport.write(
                b"421 4.4.2 Timeout: no complete command in time, closing the connection\r\n"
            )
        super()._timeout_cb()

    async def push(self, status: AnyStr) -> None:
        """Send a reply, giving aiosmtpd's built-in data-phase errors enhanced codes.

        A reply that echoes a client's bytes that were not UTF-8 (aiosmtpd hands them over as
        surrogates, which aiosmtpd's push cannot encode: "500 Error: (UnicodeEncodeError)")
        shows those bytes as \\xNN.
        """
        if isinstance(status, str):
            status = self._enhanced(status)
            if not status.isascii():
                status = status.encode("utf-8", "surrogateescape").decode(
                    "utf-8", "backslashreplace"
                )
        await super().push(status)

    def _enhanced(self, status: str) -> str:
        if status.startswith("552 Error: message size exceeds"):  # the SIZE declared at MAIL
            return self._refused("too-big", self._too_big(), at_data=False)
        if status == "500 Command line too long":  # over aiosmtpd's limit for that command
            reply = (
                "500 5.5.2 Line too long: a command line may have at most "
                f"{self.max_command_size_limit} bytes"
            )
            return self._refused("command-too-long", reply, at_data=False)
        return status

    def _too_big(self) -> str:
        return f"552 5.3.4 Message too big: the limit is {self.data_size_limit} bytes"

    def _refused(self, reason: str, reply: str, at_data: bool) -> str:
        """Log and count a refusal by aiosmtpd itself; after DATA, LMTP answers per recipient."""
        self.event_handler.count_refusal_soon(reason)
        log.info("refused a message from %s: %s", self._client or "local", reply)
        envelope = self.envelope
        if at_data and isinstance(self, LMTP) and envelope is not None and envelope.rcpt_tos:
            return "\r\n".join([reply] * len(envelope.rcpt_tos))
        return reply


def _command_limits() -> defaultdict[str, int]:
    """A connection's command line limits, by command: aiosmtpd's base for each until EHLO."""
    return defaultdict(lambda: SMTP.command_size_limit)


class GatewaySMTP(_Guarded, SMTP):
    """SMTP with the gateway's limits."""


class GatewayLMTP(_Guarded, LMTP):
    """LMTP with the gateway's limits; DATA answers one line per recipient."""
