"""The aiosmtpd handler: refuse at RCPT, store at DATA, answer 250 only after the commit."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable

from aiosmtpd.smtp import SMTP, Envelope, Session as SmtpSession
from sqlalchemy.orm import Session, sessionmaker

from gateway.limits import ClientLimits, shape_problem
from listgate import counters, lists
from listgate.addresses import Recipient, parse_recipient
from listgate.config import Settings
from listgate.db import transaction
from listgate.ingest import COMMAND, DROPPED, DUPLICATE, HELD_FOR_MODERATION, IngestResult, ingest
from listgate.models import OutboxEntry
from listgate.parsing import parse

log = logging.getLogger(__name__)

Enqueue = Callable[[list[OutboxEntry]], Any]
TEMPFAIL = "451 4.3.0 Temporary storage failure, please try again later"


@dataclass
class Outcome:
    """What became of one envelope recipient."""

    address: str
    result: IngestResult | None  # None: the list vanished between RCPT and DATA

    @property
    def reply(self) -> str:
        """The SMTP/LMTP reply line for this recipient."""
        r = self.result
        if r is None:
            return f"550 5.1.1 <{self.address}>: no such list here"
        text = {
            DUPLICATE: "already archived, not stored twice",
            HELD_FOR_MODERATION: "held for moderation",
            DROPPED: f"accepted, not posted ({r.reason})",
            COMMAND: r.reason,
        }.get(r.status, "stored")
        return f"250 2.0.0 <{self.address}>: {text}"


class GatewayHandler:
    """Hooks for aiosmtpd; storage runs in an executor so the loop keeps serving clients."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        enqueue: Enqueue | None = None,
        *,
        read_factory: sessionmaker[Session] | None = None,
        limits: ClientLimits | None = None,
        executor: Executor | None = None,
        lmtp: bool = False,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.read_factory = read_factory or factory
        self.enqueue = enqueue
        self.limits = limits or ClientLimits(settings.max_connections_per_client, settings.max_messages_per_minute)
        self.executor = executor
        self.lmtp = lmtp

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def handle_MAIL(self, server: SMTP, session: SmtpSession, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        """Rate-limit per client address, then accept any sender (incl. the null sender)."""
        client = client_address(session)
        if client and not self.limits.allow_message(client):
            log.warning("refused MAIL from %s (%s): over %d messages per minute",
                        client, address, self.limits.max_per_minute)
            await self._run(self.count_refusal, "rate-limit")
            return (f"451 4.7.1 Too many messages from {client}: the limit is "
                    f"{self.limits.max_per_minute} per minute, try again later")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        """Accept list and command addresses of existing lists; refuse anything else now."""
        recipient = parse_recipient(address, self.settings.domain)
        if recipient is None:
            return await self._refuse_rcpt(address, f"550 5.1.1 <{address}>: not a list address at {self.settings.domain}")
        try:
            exists = await self._run(self.list_exists, recipient.list_name)
        except Exception:  # noqa: BLE001 - the database being away is temporary
            log.exception("list lookup failed for %s", address)
            return "451 4.3.0 Temporary failure looking up the list, try again later"
        if not exists:
            return await self._refuse_rcpt(address, f"550 5.1.1 <{address}>: no list named {recipient.list_name!r} here")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def _refuse_rcpt(self, address: str, reply: str) -> str:
        log.info("refused RCPT %s: %s", address, reply)
        await self._run(self.count_refusal, "unknown-list")
        return reply

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        """Check limits, store for every recipient in one transaction, then answer."""
        raw = envelope.original_content or b""
        client = client_address(session) or "local"
        s = self.settings
        problem = shape_problem(raw, s.max_header_count, s.max_line_length, s.max_mime_depth)
        if problem is not None:
            reason, reply = problem
            log.info("refused message from %s (%s, %d bytes): %s", client, envelope.mail_from, len(raw), reply)
            await self._run(self.count_refusal, reason)
            return self._each(envelope, reply)
        try:
            message_id, outcomes = await self._run(self.deliver, raw, envelope.mail_from, list(envelope.rcpt_tos))
        except Exception:  # noqa: BLE001 - nothing was committed: the sender must retry
            log.exception("storage failed for a message from %s (%s) to %s", client, envelope.mail_from, envelope.rcpt_tos)
            await self._run(self.count_refusal, "storage-failure")
            return self._each(envelope, TEMPFAIL)
        log.info("accepted <%s> from %s (%s, %d bytes): %s", message_id, client, envelope.mail_from, len(raw),
                 "; ".join(f"{o.address} {o.result.status if o.result else 'list vanished'}"
                           + (f" ({o.result.reason})" if o.result and o.result.reason else "") for o in outcomes))
        if self.lmtp:
            return "\r\n".join(o.reply for o in outcomes)
        if all(o.result is None for o in outcomes):
            return outcomes[0].reply
        return "250 2.0.0 OK: " + "; ".join(o.reply.split(": ", 1)[1] for o in outcomes if o.result is not None)[:400]

    def _each(self, envelope: Envelope, reply: str) -> str:
        """The same reply for every recipient (one line per recipient in LMTP)."""
        return "\r\n".join([reply] * len(envelope.rcpt_tos)) if self.lmtp else reply

    def list_exists(self, name: str) -> bool:
        """True when a list called name exists (a short read)."""
        with self.read_factory() as session:
            return lists.get(session, name) is not None

    def deliver(self, raw: bytes, mail_from: str | None, rcpt_tos: list[str]) -> tuple[str, list[Outcome]]:
        """Parse once, ingest for every recipient in one transaction, then enqueue the work.

        Returns the Message-ID and one outcome per recipient.
        """
        parsed = parse(raw)
        outcomes: list[Outcome] = []
        done: dict[Recipient, IngestResult | None] = {}
        with transaction(self.factory) as session:
            counters.bump(session, counters.RECEIVED)
            for address in rcpt_tos:
                recipient = parse_recipient(address, self.settings.domain)
                assert recipient is not None  # handle_RCPT let only these through
                if recipient not in done:
                    done[recipient] = self._ingest_one(session, parsed, recipient, mail_from)
                outcomes.append(Outcome(address, done[recipient]))
        entries = [e for r in done.values() if r is not None for e in r.outbox]
        if entries and self.enqueue is not None:
            self.enqueue(entries)
        return parsed.message_id, outcomes

    def _ingest_one(self, session: Session, parsed: Any, recipient: Recipient, mail_from: str | None) -> IngestResult | None:
        mlist = lists.get(session, recipient.list_name)
        if mlist is None:
            return None
        result = ingest(session, parsed, mlist, domain=self.settings.domain, origin="smtp", envelope_from=mail_from,
                        fallback_days=self.settings.subject_fallback_days, recipient=recipient)
        if result.status not in (DUPLICATE, DROPPED, COMMAND):
            counters.bump(session, counters.STORED, result.status)
        elif result.status == DROPPED:
            counters.bump(session, counters.REFUSED, "automatic")
        return result

    def count_refusal(self, reason: str) -> None:
        """Count a refusal in its own short transaction; a failure here never changes a reply."""
        try:
            with transaction(self.factory) as session:
                counters.bump(session, counters.REFUSED, reason)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not count a refusal (%s): %s", reason, exc)


def client_address(session: SmtpSession) -> str:
    """The client's IP address ('' for a unix socket peer)."""
    peer = session.peer
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return ""
