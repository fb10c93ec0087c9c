"""The answers at SMTP DATA, decided and spooled a group-commit batch at a time.

The writer thread takes every message waiting (an `Arrival`: bytes and envelope, as DATA ended)
and, for the whole batch: checks each one's shape and scans its headers; decides every
recipient of every message with one statement on a read connection (listgate.admission: the
lists by name with the bans, archived Message-IDs and members the batch asks about); then
appends what was accepted, and the counts of what was refused, in one spool transaction. The
batch checks out one connection for both where the spool is a table of the archive database
(PostgreSQL); SQLite's spool is a file of its own, with its own connection. Each message's
future gets its `Answer` only after that commit. A message whose shape is refused is answered
with its own reply whatever happens to the others; when the batch's look-ups fail, each
message is decided alone (the one that made them fail gets its 451 alone); a failed commit
fails (451) every message of the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from listgate import counters
from listgate.addresses import Recipient, parse_recipient
from listgate.admission import (
    COMMAND,
    DROPPED,
    DUPLICATE,
    HELD_FOR_MODERATION,
    REFUSED,
    STORED,
    VARIANT,
    Ask,
    IngestResult,
    admit_all,
)
from listgate.config import Settings
from listgate.db import look_ups
from listgate.mail.parser import parse_head
from listgate.mail.shape import SMUGGLING, shape_problem
from listgate.spool import Spool, Spooled

log = logging.getLogger(__name__)
# The answers at DATA that the archiver carries out: automatic mail (DROPPED) goes to the
# not-posted queue there, and other bytes under an archived Message-ID become a variant.
SPOOLED = (STORED, HELD_FOR_MODERATION, COMMAND, DROPPED, VARIANT)


@dataclass(frozen=True)
class Arrival:
    """A message as DATA ended: its bytes, its envelope, and whether the reader saw a smuggled
    dot."""

    raw: bytes
    mail_from: str | None
    rcpt_tos: tuple[str, ...]
    smuggled: bool = False


@dataclass(frozen=True)
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

    def describe(self) -> str:
        """The recipient and what became of it, for the log."""
        r = self.result
        if r is None:
            return f"{self.address} list vanished"
        return f"{self.address} {r.status}" + (f" ({r.reason})" if r.reason else "")


@dataclass(frozen=True)
class Answer:
    """What DATA answers one message: a refusal (reason label, reply), or one outcome per
    recipient."""

    problem: tuple[str, str] | None = None
    message_id: str = ""
    outcomes: tuple[Outcome, ...] = ()
    counted: bool = True  # False: a refusal whose count the commit lost (the caller keeps it)

    def reply(self, lmtp: bool) -> str:
        """The reply to DATA (LMTP: one line per recipient) for an answered message."""
        outcomes = self.outcomes
        if lmtp:
            return "\r\n".join(o.reply for o in outcomes)
        if all(o.result is None or o.result.status == REFUSED for o in outcomes):
            return outcomes[0].reply
        return (
            "250 2.0.0 OK: "
            + "; ".join(o.reply.split(": ", 1)[1] for o in outcomes if o.result is not None)[:400]
        )

    def spooled(self, arrival: Arrival) -> Spooled:
        """What the spool keeps of the message: its bytes if a recipient accepted it, and its
        counts."""
        if self.problem is not None:
            return Spooled(b"", None, (), "", ((counters.REFUSED, self.problem[0], 1),))
        accepted = tuple(
            o.address for o in self.outcomes if o.result is not None and o.result.status in SPOOLED
        )
        return Spooled(
            arrival.raw if accepted else b"",
            arrival.mail_from,
            accepted,
            self.message_id,
            tuple(_counts(self.outcomes)),
        )


Job = Arrival | Spooled  # a Spooled job is a count alone (a refusal before DATA)
Decided = dict[Recipient, IngestResult | None]  # one message's answer per recipient
Result = Answer | None | BaseException


class Answerer:
    """The writer's batch step: decide every waiting message, spool them in one commit, answer."""

    def __init__(self, settings: Settings, read: Engine, spool: Spool) -> None:
        self.settings = settings
        # the look-ups: the archive database, each statement by itself (db.look_ups): never the
        # archive's write lock on SQLite
        self.read = look_ups(read)
        self.spool = spool
        # the spool is a table of the database the look-ups read (PostgreSQL): the batch's
        # append goes on the look-ups' connection, one checkout per batch
        self.shared = not spool.separate and spool.engine.url == self.read.url

    def __call__(self, jobs: list[Job]) -> list[Result]:
        """One result per job: its Answer (a count alone: None), or the exception that failed it."""
        with _Checkout(self.read) as held:
            return self._answer(held, jobs)

    def _answer(self, held: _Checkout, jobs: list[Job]) -> list[Result]:
        results: list[Result] = [None] * len(jobs)
        asks: dict[int, Ask] = {}
        for i, job in enumerate(jobs):
            if isinstance(job, Arrival):
                try:
                    problem = self.shape(job)
                    if problem is not None:
                        results[i] = Answer(problem)
                    else:
                        asks[i] = self.ask(job)
                except Exception as exc:  # noqa: BLE001 - fails this message alone (451)
                    results[i] = exc
        if asks:
            self._decide(held, jobs, asks, results)
        self._append(held, jobs, results)
        return results

    def shape(self, job: Arrival) -> tuple[str, str] | None:
        """(reason label, 5xx reply) for a message refused for its shape or size, else None."""
        if job.smuggled:
            return SMUGGLING
        s = self.settings
        return shape_problem(
            job.raw,
            s.max_header_count,
            s.max_line_length,
            s.max_mime_depth,
            max_header_bytes=s.max_header_bytes,
            max_folded=s.max_folded_lines,
        )

    def ask(self, job: Arrival) -> Ask:
        """The message's question for listgate.admission: its header scan and recipients."""
        recipients = []
        for address in job.rcpt_tos:
            recipient = parse_recipient(address, self.settings.domain)
            assert recipient is not None  # handle_RCPT let only these through
            recipients.append(recipient)
        return Ask(parse_head(job.raw), job.raw, job.mail_from, tuple(recipients))

    def _decide(
        self, held: _Checkout, jobs: list[Job], asks: dict[int, Ask], results: list[Result]
    ) -> None:
        """Every asking message's Answer, read for all at once; when that fails, each alone.

        One message can make the look-ups fail (PostgreSQL refuses a NUL in a From): decided
        alone, it fails alone (451) and the others of its batch are answered. A lost connection
        fails them all at once.
        """
        decided: dict[int, Decided | BaseException]
        try:
            decided = dict(zip(asks, self._admit(held, list(asks.values())), strict=True))
        except Exception as exc:  # noqa: BLE001 - each message of the read gets its 451
            if len(asks) == 1 or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
                decided = dict.fromkeys(asks, exc)
            else:
                decided = {i: self._alone(held, ask) for i, ask in asks.items()}
        for i, per in decided.items():
            job = jobs[i]
            assert isinstance(job, Arrival)
            results[i] = (
                per
                if isinstance(per, BaseException)
                else Answer(None, asks[i].head.message_id, _outcomes(job, asks[i].recipients, per))
            )

    def _admit(self, held: _Checkout, asks: list[Ask]) -> list[Decided]:
        """The batch's answers; read again once on a new connection when the pooled one was cut
        (a server restart under steady load: listgate.db pings only connections idle a while)."""
        try:
            return admit_all(held.connection(), asks, domain=self.settings.domain)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return admit_all(held.connection(), asks, domain=self.settings.domain)

    def _alone(self, held: _Checkout, ask: Ask) -> Decided | BaseException:
        try:
            return self._admit(held, [ask])[0]
        except Exception as exc:  # noqa: BLE001 - this message's 451
            return exc

    def _append(self, held: _Checkout, jobs: list[Job], results: list[Result]) -> None:
        """Spool the batch in one transaction; on failure, every answer but a refusal becomes it."""
        spooled = []
        for job, result in zip(jobs, results, strict=True):
            if isinstance(job, Spooled):
                spooled.append(job)
            elif isinstance(result, Answer):
                spooled.append(result.spooled(job))
        if not spooled:
            return
        try:
            self.spool.append(spooled, held.connection().connection if self.shared else None)
        except Exception as exc:  # noqa: BLE001 - no 250 for what the commit lost
            for i, result in enumerate(results):
                if isinstance(result, Answer) and result.problem is not None:
                    # its refusal stands; its count goes back to the caller (handler's tally)
                    log.warning("could not count a refusal (%s) now: %s", result.problem[0], exc)
                    results[i] = replace(result, counted=False)
                elif not isinstance(result, BaseException):
                    results[i] = exc


class _Checkout:
    """The batch's one connection from the look-ups' pool, checked out when first asked for; a
    new one when the last was invalidated (a lost server); back to the pool at the end."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def connection(self) -> Connection:
        """The batch's connection (checked out now if it has none or lost it)."""
        conn = self.conn
        if conn is None or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self.conn = self.engine.connect()
        return conn

    def __enter__(self) -> _Checkout:
        return self

    def __exit__(self, *_: object) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:  # the batch is answered (its spool commit done or failed): never fail it here
            conn.close()
        except Exception as exc:  # noqa: BLE001 - the pool discards what it cannot take back
            log.warning("could not return the look-ups' connection to the pool: %s", exc)


def _outcomes(
    job: Arrival, recipients: tuple[Recipient, ...], decided: Decided
) -> tuple[Outcome, ...]:
    """One outcome per envelope recipient (two addresses of one list share one answer)."""
    return tuple(Outcome(a, decided[r]) for a, r in zip(job.rcpt_tos, recipients, strict=True))


def _counts(outcomes: tuple[Outcome, ...]) -> list[tuple[str, str, int]]:
    """What an answered message counts: received, refused per list (the archiver: the rest)."""
    results = {id(o.result): o.result for o in outcomes if o.result is not None}.values()
    banned = sum(r.status == REFUSED for r in results)
    return [(counters.RECEIVED, "", 1)] + ([(counters.REFUSED, "banned", banned)] if banned else [])
