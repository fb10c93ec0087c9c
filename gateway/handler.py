"""The aiosmtpd handler: refuse at RCPT; at DATA hand the message to the group writer, which
decides it from the headers with the rest of its batch and spools them (gateway/answers.py),
and answer 250 only after the commit.

A 250 means the exact bytes are durable in the spool; the archiver stage (listgate.spool)
parses, threads, indexes and queues the fan-out afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.orm import Session, sessionmaker

from gateway.answers import Answer, Answerer, Arrival, Begun, Job, Result
from gateway.data import DataBudget
from gateway.hooks import Introspected
from gateway.limits import ClientLimits, client_limits
from gateway.tally import Tally, describe
from gateway.writer import GroupWriter
from listgate import counters, privacy, store
from listgate.addresses import Recipient, ascii_reading, eight_bit_problem, parse_recipient
from listgate.config import Settings
from listgate.db import look_ups
from listgate.spool import Counts, Spool, Spooled

log = logging.getLogger(__name__)

LIST_CACHE_SECONDS = 5.0
TEMPFAIL = "451 4.3.0 Temporary storage failure, please try again later"


class GatewayHandler(Introspected):
    """Hooks for aiosmtpd; look-ups and storage run off the loop (executor, group writer)."""

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
        # RCPT's look-ups: Core statements, each by itself (db.look_ups), as DATA's
        self.look_ups = look_ups(self.read_factory.kw["bind"])
        # where accepted mail waits for the archiver
        self.spool = spool or Spool(factory.kw["bind"])
        self.limits = limits or client_limits(settings)
        self.budget = budget or DataBudget(settings.max_data_memory, settings.max_message_size)
        self.executor = executor
        self.lmtp = lmtp
        # each batch decided on the read engine, spooled in one commit (gateway/answers.py)
        self.answer = Answerer(settings, self.read_factory.kw["bind"], self.spool)
        self.writer: GroupWriter[Job, Answer | None] | None = None  # set by the server
        # set after each spool commit: wakes an in-process archiver
        self.spooled = threading.Event()
        # count_refusal_soon's counts, written a job at a time
        self._counting = Tally(self._write_counts, self._write_counts_now)
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
            await self.count_refusal("8bit-sender")
            return problem
        if client and not self.limits.allow_message(client):
            log.warning(
                "refused MAIL from %s (%s): over %d messages per minute",
                client,
                address,
                self.limits.max_per_minute,
            )
            await self.count_refusal("rate-limit")
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
            await self.count_refusal("rate-limit")
            return self._over_rate(client)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def _refuse_rcpt(self, address: str, reply: str) -> str:
        note = "" if address.isascii() else f" (non-ASCII, reads as {ascii_reading(address)!r})"
        log.info("refused RCPT %s%s: %s", address, note, reply)
        await self.count_refusal("unknown-list")
        return reply

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        """Hand the message to the writer (checks, decision, spool: a batch at a time), answer."""
        raw = envelope.original_content or b""
        client = client_address(session) or "local"
        smuggled = bool(getattr(server, "smuggled_dot", False))
        try:
            answer = await self._store(
                Arrival(raw, envelope.mail_from, tuple(envelope.rcpt_tos), smuggled)
            )
        except Exception:
            log.exception(
                "storage failed for a message from %s (%s) to %s",
                client,
                envelope.mail_from,
                envelope.rcpt_tos,
            )
            await self.count_refusal("storage-failure")
            return self._each(envelope, TEMPFAIL)
        if answer.problem is not None:
            log.info(
                "refused message from %s (%s, %d bytes): %s",
                client,
                envelope.mail_from,
                len(raw),
                answer.problem[1],
            )
            if not answer.counted:  # the batch's commit failed: written with the next counts
                self._counting.add(counters.REFUSED, answer.problem[0])
            return self._each(envelope, answer.problem[1])
        log.info(
            "accepted <%s> from %s (%s, %d bytes): %s",
            answer.message_id,
            client,
            envelope.mail_from,
            len(raw),
            "; ".join(o.describe() for o in answer.outcomes),
        )
        return answer.reply(self.lmtp)

    async def _store(self, job: Arrival) -> Answer:
        """Through the group writer when there is one, else in an executor thread."""
        if self.writer is None:
            result = await self._run(self._store_alone, job)
        else:
            result = await self.writer.submit_waiting(job)
        assert isinstance(result, Answer)
        return result

    def _store_alone(self, job: Job) -> Answer | None:
        result = self.store_batch([job])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _each(self, envelope: Envelope, reply: str) -> str:
        """The same reply for every recipient (one line per recipient in LMTP)."""
        return "\r\n".join([reply] * len(envelope.rcpt_tos)) if self.lmtp else reply

    def admits(self, recipient: Recipient, sender: str | None) -> bool:
        """True when RCPT may accept this list from sender; public lists remembered a while.

        The list is read by the statement that reads it at DATA (store.lists_with_facts, Core, on
        the look-up engine); a private list's checks are Core statements on the same connection.
        """
        with self.look_ups.connect() as conn:
            found = store.lists_with_facts(conn, [recipient.list_name], [], [], [])
            known = found.get(recipient.list_name)
            if known is None:
                return False
            if known.mlist.private:
                secret = self.settings.secret_key
                return privacy.admits(conn, known.mlist, sender, recipient, secret)
        self._lists_seen[recipient.list_name] = time.monotonic() + LIST_CACHE_SECONDS
        return True

    def _known_list(self, name: str) -> bool:
        """A public list of that name existed a moment ago (a deleted one gets its 550 at DATA)."""
        return self._lists_seen.get(name, 0.0) > time.monotonic()

    def store_batch(self, jobs: list[Job]) -> list[Result]:
        """Decide and spool a batch of messages in one transaction (one fsync), counts with them.

        Each job's result is its Answer, or the exception that failed it: a failure of the
        look-ups or of the commit fails every message that needed them (451: none gets a 250 for
        work the database undid); a message refused for its shape keeps its own reply.
        """
        results = self.answer(jobs)
        self.spooled.set()
        return results

    def begin_batch(self, jobs: list[Job], behind: Begun | None) -> tuple[list[Result], Begun]:
        """store_batch in two stages (GroupWriter's): decide jobs, spooling behind with their
        look-ups (gateway/answers.py); behind's results."""
        done, begun = self.answer.begin(jobs, behind)
        if behind is not None:
            self.spooled.set()
        return done, begun

    def finish_batch(self, begun: Begun) -> list[Result]:
        """Spool a batch begin_batch decided, alone: its results."""
        results = self.answer.finish(begun)
        self.spooled.set()
        return results

    async def count_refusal(self, reason: str) -> None:
        """Count a refusal through the spool (the archiver adds it up); a failure here never changes
        a reply, and leaves the count waiting with count_refusal_soon's.

        It waits for the group commit it shares, so a refusal the client was told of is counted;
        it waits on the loop (GroupWriter.submit_waiting), holding no executor thread, so refusals
        waiting for a busy writer cannot starve the look-ups of other clients.
        """
        try:
            await self._write_counts(((counters.REFUSED, reason, 1),))
        except Exception as exc:  # noqa: BLE001
            log.warning(
                "could not count a refusal (%s) now, it waits to be written: %s", reason, exc
            )
            self._counting.add(counters.REFUSED, reason)

    def count_refusal_soon(self, reason: str) -> None:
        """Count a refusal without waiting for it (replies given from aiosmtpd's own code).

        The count waits in memory for the next write of them all (gateway/tally.py): a client
        repeating a refused command adds one to a number, not a task and a job for the writer.
        """
        self._counting.add(counters.REFUSED, reason)

    async def _write_counts(self, counts: Counts) -> None:
        """Spool a job of counts only and wait for its commit."""
        job = counts_only(counts)
        if self.writer is not None:
            await self.writer.submit_waiting(job)
        else:  # shielded: a cancelled wait must not cancel a write not yet started
            await asyncio.shield(self._run(self._store_alone, job))

    def _write_counts_now(self, counts: Counts) -> None:
        """Spool a job of counts without waiting (the loop is stopping; the writer still runs)."""
        job = counts_only(counts)
        if self.writer is None:
            self._store_alone(job)
            return

        def failed(written: Future[Answer | None]) -> None:
            if written.exception() is not None:
                log.warning("could not write %s: %s", describe(counts), written.exception())

        self.writer.submit(job).add_done_callback(failed)


def counts_only(counts: Counts) -> Spooled:
    """A spool job that stores nothing but counts (the archiver adds them up)."""
    return Spooled(b"", None, (), "", counts)


def client_address(session: SmtpSession) -> str:
    """The client's IP address ('' for a unix socket peer)."""
    peer = session.peer
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return ""
