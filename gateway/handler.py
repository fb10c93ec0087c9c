"""The aiosmtpd handler: refuse at RCPT; at DATA decide from the headers, spool, and answer 250 only
after the commit.

A 250 means the exact bytes are durable in the spool; the archiver stage (listgate.spool)
parses, threads, indexes and queues the fan-out afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.orm import Session, sessionmaker

from gateway.data import DataBudget
from gateway.hooks import Introspected
from gateway.limits import ClientLimits
from gateway.writer import GroupWriter
from listgate import counters, lists, privacy, store
from listgate.addresses import Recipient, ascii_reading, eight_bit_problem, parse_recipient
from listgate.config import Settings
from listgate.ingest import (
    COMMAND,
    DROPPED,
    DUPLICATE,
    HELD_FOR_MODERATION,
    REFUSED,
    STORED,
    VARIANT,
    IngestResult,
    admit,
)
from listgate.mail.message import MessageHead
from listgate.mail.parser import parse_head
from listgate.mail.shape import SMUGGLING, shape_problem
from listgate.spool import Spool, Spooled

log = logging.getLogger(__name__)

LIST_CACHE_SECONDS = 5.0
TEMPFAIL = "451 4.3.0 Temporary storage failure, please try again later"
# The answers at DATA that the archiver carries out: automatic mail (DROPPED) goes to the
# not-posted queue there, and other bytes under an archived Message-ID become a variant.
SPOOLED = (STORED, HELD_FOR_MODERATION, COMMAND, DROPPED, VARIANT)


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
        if r.status == REFUSED:
            return f"550 5.7.1 <{self.address}>: not accepted: {r.reason}"
        text = {
            DUPLICATE: "already archived, not stored twice",
            VARIANT: "stored beside the archived message with the same Message-ID",
            HELD_FOR_MODERATION: "held for moderation",
            DROPPED: f"accepted, not posted ({r.reason})",
            COMMAND: r.reason,
        }.get(r.status, "stored")
        return f"250 2.0.0 <{self.address}>: {text}"


Delivered = tuple[str, list[Outcome]]  # (Message-ID, one outcome per envelope recipient)


class GatewayHandler(Introspected):
    """Hooks for aiosmtpd; storage runs in an executor so the loop keeps serving clients."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        read_factory: sessionmaker[Session] | None = None,
        spool: Spool | None = None,
        limits: ClientLimits | None = None,
        budget: DataBudget | None = None,
        executor: Executor | None = None,
        lmtp: bool = False,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.read_factory = read_factory or factory
        # where accepted mail waits for the archiver
        self.spool = spool or Spool(factory.kw["bind"])
        self.limits = limits or ClientLimits(
            settings.max_connections_per_client, settings.max_messages_per_minute
        )
        self.budget = budget or DataBudget(settings.max_data_memory, settings.max_message_size)
        self.executor = executor
        self.lmtp = lmtp
        self.writer: GroupWriter[Spooled, None] | None = None  # set by the server: group commit
        # set after each spool commit: wakes an in-process archiver
        self.spooled = threading.Event()
        self._lists_seen: dict[
            str, float
        ] = {}  # list name -> until when RCPT need not look it up again

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Refuse an 8-bit sender without SMTPUTF8, rate-limit per client, else accept (<> too)."""
        client = client_address(session)
        problem = eight_bit_problem(address, mail_options)
        if problem:
            log.info("refused MAIL from %s (%r): %s", client or "local", address, problem)
            await self._run(self.count_refusal, "8bit-sender")
            return problem
        if client and not self.limits.allow_message(client):
            log.warning(
                "refused MAIL from %s (%s): over %d messages per minute",
                client,
                address,
                self.limits.max_per_minute,
            )
            await self._run(self.count_refusal, "rate-limit")
            return self._over_rate(client)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    def _over_rate(self, client: str) -> str:
        return (
            f"451 4.7.1 Too many messages from {client}: the limit is {self.limits.max_per_minute} "
            "per minute (each recipient counts), try again later"
        )

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept list and command addresses of lists this sender may see; refuse anything else now.

        A private list is answered like a missing one unless the sender is known to it
        (privacy.admits). At most max_recipients RCPTs per transaction; each accepted recipient
        after the first counts against the client's messages per minute, like a message of its own.
        """
        tried = getattr(envelope, "listgate_rcpts", 0) + 1
        envelope.listgate_rcpts = tried  # type: ignore[attr-defined]
        if tried > self.settings.max_recipients:
            return (
                "452 4.5.3 Too many recipients: the limit is "
                f"{self.settings.max_recipients} per message, "
                "send the others in another transaction"
            )
        recipient = parse_recipient(address, self.settings.domain)
        if recipient is None:
            return await self._refuse_rcpt(
                address, f"550 5.1.1 <{address}>: not a list address at {self.settings.domain}"
            )
        try:
            known = self._known_list(recipient.list_name) or await self._run(
                self.admits, recipient, envelope.mail_from
            )
        except Exception:
            log.exception("list lookup failed for %s", address)
            return "451 4.3.0 Temporary failure looking up the list, try again later"
        if not known:  # no such list, or a private one this sender may not know of: the same answer
            return await self._refuse_rcpt(
                address, f"550 5.1.1 <{address}>: no list named {recipient.list_name!r} here"
            )
        client = client_address(session)
        if envelope.rcpt_tos and client and not self.limits.allow_message(client):
            log.warning(
                "refused RCPT %s from %s: over %d messages per minute",
                address,
                client,
                self.limits.max_per_minute,
            )
            await self._run(self.count_refusal, "rate-limit")
            return self._over_rate(client)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def _refuse_rcpt(self, address: str, reply: str) -> str:
        note = "" if address.isascii() else f" (non-ASCII, reads as {ascii_reading(address)!r})"
        log.info("refused RCPT %s%s: %s", address, note, reply)
        await self._run(self.count_refusal, "unknown-list")
        return reply

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        """Check limits, decide each recipient from the headers, spool in a group commit, answer."""
        raw = envelope.original_content or b""
        client = client_address(session) or "local"
        try:
            problem, delivered, job = (
                (SMUGGLING, None, None)
                if getattr(server, "smuggled_dot", False)
                else await self._run(self.prepare, raw, envelope.mail_from, list(envelope.rcpt_tos))
            )
            if problem is not None:
                reason, reply = problem
                log.info(
                    "refused message from %s (%s, %d bytes): %s",
                    client,
                    envelope.mail_from,
                    len(raw),
                    reply,
                )
                await self._run(self.count_refusal, reason)
                return self._each(envelope, reply)
            assert delivered is not None and job is not None
            await self._store(job)
        except Exception:
            log.exception(
                "storage failed for a message from %s (%s) to %s",
                client,
                envelope.mail_from,
                envelope.rcpt_tos,
            )
            await self._run(self.count_refusal, "storage-failure")
            return self._each(envelope, TEMPFAIL)
        message_id, outcomes = delivered
        log.info(
            "accepted <%s> from %s (%s, %d bytes): %s",
            message_id,
            client,
            envelope.mail_from,
            len(raw),
            "; ".join(
                f"{o.address} {o.result.status if o.result else 'list vanished'}"
                + (f" ({o.result.reason})" if o.result and o.result.reason else "")
                for o in outcomes
            ),
        )
        if self.lmtp:
            return "\r\n".join(o.reply for o in outcomes)
        if all(o.result is None or o.result.status == REFUSED for o in outcomes):
            return outcomes[0].reply
        return (
            "250 2.0.0 OK: "
            + "; ".join(o.reply.split(": ", 1)[1] for o in outcomes if o.result is not None)[:400]
        )

    def prepare(
        self, raw: bytes, mail_from: str | None, rcpt_tos: list[str]
    ) -> tuple[tuple[str, str] | None, Delivered | None, Spooled | None]:
        """(limit problem, None, None) for a message we refuse, else (None, the answers, what to
        spool).

        A message with no recipient to archive for is spooled without bytes: only its counts.
        """
        s = self.settings
        problem = shape_problem(
            raw,
            s.max_header_count,
            s.max_line_length,
            s.max_mime_depth,
            max_header_bytes=s.max_header_bytes,
            max_folded=s.max_folded_lines,
        )
        if problem is not None:
            return problem, None, None
        head = parse_head(raw)
        with self.read_factory() as session:
            outcomes = self._decide(session, head, raw, mail_from, rcpt_tos)
        accepted = tuple(
            o.address for o in outcomes if o.result is not None and o.result.status in SPOOLED
        )
        job = Spooled(
            raw if accepted else b"", mail_from, accepted, head.message_id, tuple(_counts(outcomes))
        )
        return None, (head.message_id, outcomes), job

    def _decide(
        self,
        session: Session,
        head: MessageHead,
        raw: bytes,
        mail_from: str | None,
        rcpt_tos: list[str],
    ) -> list[Outcome]:
        """One answer per envelope recipient (two addresses of one list share one)."""
        done: dict[Recipient, IngestResult | None] = {}
        outcomes = []
        for address in rcpt_tos:
            recipient = parse_recipient(address, self.settings.domain)
            assert recipient is not None  # handle_RCPT let only these through
            if recipient not in done:
                # a read-only copy: no ORM query
                mlist = store.list_named(session.connection(), recipient.list_name)
                done[recipient] = (
                    None
                    if mlist is None
                    else admit(
                        session,
                        head,
                        raw,
                        mlist,
                        recipient,
                        domain=self.settings.domain,
                        envelope_from=mail_from,
                    )
                )
            outcomes.append(Outcome(address, done[recipient]))
        return outcomes

    async def _store(self, job: Spooled) -> None:
        """Through the group writer when there is one, else in an executor thread."""
        if self.writer is None:
            await self._run(self._store_alone, job)
            return
        await asyncio.wrap_future(self.writer.submit(job))

    def _store_alone(self, job: Spooled) -> None:
        self.store_batch([job])

    def _each(self, envelope: Envelope, reply: str) -> str:
        """The same reply for every recipient (one line per recipient in LMTP)."""
        return "\r\n".join([reply] * len(envelope.rcpt_tos)) if self.lmtp else reply

    def admits(self, recipient: Recipient, sender: str | None) -> bool:
        """True when RCPT may accept this list from sender; public lists remembered a while."""
        with self.read_factory() as session:
            mlist = lists.get(session, recipient.list_name)
            if mlist is None:
                return False
            if mlist.private:
                return privacy.admits(session, mlist, sender, recipient, self.settings.secret_key)
        self._lists_seen[recipient.list_name] = time.monotonic() + LIST_CACHE_SECONDS
        return True

    def _known_list(self, name: str) -> bool:
        """A public list of that name existed a moment ago (a deleted one gets its 550 at DATA)."""
        return self._lists_seen.get(name, 0.0) > time.monotonic()

    def store_batch(self, jobs: list[Spooled]) -> list[None]:
        """Spool several answered messages in one transaction (one fsync), their counts with them.

        All or nothing: when anything fails, before or at the commit, the exception propagates and
        every message of the batch is answered 451 (none gets a 250 for work the database undid).
        """
        self.spool.append(jobs)
        self.spooled.set()
        return [None] * len(jobs)

    def count_refusal(self, reason: str) -> None:
        """Count a refusal through the spool (the archiver adds it up); a failure here never changes
        a reply.

        It waits for the group commit it shares, so a refusal the client was told of is counted.
        """
        job = Spooled(b"", None, (), "", ((counters.REFUSED, reason),))
        try:
            if self.writer is not None:
                self.writer.submit(job).result()
            else:
                self.store_batch([job])
        except Exception as exc:  # noqa: BLE001
            log.warning("could not count a refusal (%s): %s", reason, exc)


def _counts(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    """What an answered message counts: received, refused per list (the archiver: the rest)."""
    counts = [(counters.RECEIVED, "")]
    for r in {id(o.result): o.result for o in outcomes if o.result is not None}.values():
        if r.status == REFUSED:
            counts.append((counters.REFUSED, "banned"))
    return counts


def client_address(session: SmtpSession) -> str:
    """The client's IP address ('' for a unix socket peer)."""
    peer = session.peer
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return ""
