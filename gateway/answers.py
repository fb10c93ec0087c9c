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

While clients wait, the writer begins the next batch before appending the one it decided
(`Answerer.begin`, gateway.writer's stages): on PostgreSQL that append goes in the round trip
of the next batch's look-ups (one pipeline, one Sync: listgate.driver.Ahead), so a batch costs
one round trip, not two; on SQLite (the spool a file of its own) the append goes first, then the
look-ups, as before.

On PostgreSQL the writer also keeps the facts it read (gateway.factcache): a batch whose every
question they answer is decided with no look-up, and its append inserts its rows only if they
still hold in the append's own statement (listgate.spool.Spool.append_if); when they do not, the
batch is decided again from a look-up and appended then.
"""

from __future__ import annotations

import logging
import select
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gateway.factcache import FactCache, Known
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
from listgate.driver import AHEAD, Ahead
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
        # PostgreSQL, the spool a table of the archive: the facts kept between batches
        self.cache = FactCache() if self.shared and spool.postgresql else None
        self._learned = self.cache.learn if self.cache is not None else None

    def __call__(self, jobs: list[Job]) -> list[Result]:
        """One result per job: its Answer (a count alone: None), or the exception that failed it."""
        return self.finish(self.begin(jobs)[1])

    def begin(self, jobs: list[Job], behind: Begun | None = None) -> tuple[list[Result], Begun]:
        """Decide jobs (their look-ups), appending behind (a batch decided, not yet spooled) in
        the same round trip where the database allows (PostgreSQL, the spool a table of the
        database the look-ups read: listgate.driver.Ahead): behind's results, and jobs decided.

        Never raises: behind's results are final (its append committed, or failed: 451s);
        jobs' wait for `finish` or the next `begin`. A failure of the shared round trip fails
        neither batch by itself: what was not committed is appended again alone, what was not
        read is read again; only a lost connection after behind's append was sent leaves its
        commit unknown, and its messages get the error (451) as a failed commit does.
        """
        held = behind.held if behind is not None else _Checkout(self.read)
        done: list[Result] = []
        # its own connection, or decided from the cache (its append checks the cache): alone
        if behind is not None and (not self.shared or behind.known is not None):
            done, behind = self._append_begun(held, behind), None
        results, asks = self._screen(jobs)
        known = self._known(asks)
        if known is not None:  # no look-up: one round trip for this batch, its checked append
            if behind is not None:
                done = self._append_begun(held, behind)
            self._answers(jobs, asks, dict(zip(asks, known.decided, strict=True)), results)
            return done, Begun(jobs, results, held, known, asks)
        if behind is not None:
            if asks and _spooled(behind.jobs, behind.results):
                done = self._decide_ahead(held, jobs, asks, results, behind)
                return done, Begun(jobs, results, held)
            done = self._append(held, behind.jobs, behind.results)
        if asks:
            self._decide(held, jobs, asks, results)
        return done, Begun(jobs, results, held)

    def finish(self, begun: Begun) -> list[Result]:
        """Append a decided batch alone, and give its connection back: its results."""
        with begun.held as held:
            return self._append_begun(held, begun)

    def _known(self, asks: dict[int, Ask]) -> Known | None:
        """The asking messages decided from the cache (PostgreSQL), or None: a look-up decides."""
        if self.cache is None or not asks:
            return None
        return self.cache.decide(list(asks.values()), domain=self.settings.domain)

    def _append_begun(self, held: _Checkout, begun: Begun) -> list[Result]:
        """Spool a decided batch: as _append; one decided from the cache only if the facts still
        hold in the append's own snapshot (Spool.append_if), else decided again from a look-up and
        appended then."""
        known = begun.known
        if known is None:
            return self._append(held, begun.jobs, begun.results)
        spooled = _spooled(begun.jobs, begun.results)
        try:
            conn = held.connection().connection
            if self.spool.append_if(spooled, conn, known.epoch, known.unarchived):
                return list(begun.results)
        except Exception as exc:  # noqa: BLE001 - no 250 for what the commit lost
            return _failed(begun.results, exc)
        log.debug("the facts changed since they were read: %d messages decided again", len(spooled))
        results = list(begun.results)
        self._decide(held, begun.jobs, begun.asks, results)
        return self._append(held, begun.jobs, results)

    def _screen(self, jobs: list[Job]) -> tuple[list[Result], dict[int, Ask]]:
        """Each job's shape refusal, or its question for the look-ups."""
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
        return results, asks

    def _decide_ahead(
        self,
        held: _Checkout,
        jobs: list[Job],
        asks: dict[int, Ask],
        results: list[Result],
        behind: Begun,
    ) -> list[Result]:
        """_decide, with behind's append sent ahead of the look-up in its round trip: behind's
        results."""
        conn = held.connection()
        spooled = _spooled(behind.jobs, behind.results)
        ahead = Ahead(lambda _driver: self.spool.queue_append(conn.connection, spooled))
        conn.info[AHEAD] = ahead
        try:
            decided = admit_all(
                conn, list(asks.values()), domain=self.settings.domain, learned=self._learned
            )
        except Exception as exc:  # noqa: BLE001 - read again below, each message alone if need be
            failed: Exception | None = exc
        else:
            failed = None
        finally:
            conn.info.pop(AHEAD, None)  # not sent (no statement ran): never on a later run
        if ahead.done:
            done = list(behind.results)
        elif ahead.sent and conn.invalidated:
            log.warning("a spool append's commit is unknown (connection lost): %s", failed)
            done = _failed(behind.results, failed)
        else:  # nothing of it committed: alone, as finish would
            done = self._append(held, behind.jobs, behind.results)
        if failed is None:
            self._answers(jobs, asks, dict(zip(asks, decided, strict=True)), results)
        else:
            self._decide(held, jobs, asks, results)
        return done

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
        self._answers(jobs, asks, decided, results)

    def _answers(
        self,
        jobs: list[Job],
        asks: dict[int, Ask],
        decided: dict[int, Decided | BaseException],
        results: list[Result],
    ) -> None:
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
            return admit_all(
                held.connection(), asks, domain=self.settings.domain, learned=self._learned
            )
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return admit_all(
            held.connection(), asks, domain=self.settings.domain, learned=self._learned
        )

    def _alone(self, held: _Checkout, ask: Ask) -> Decided | BaseException:
        try:
            return self._admit(held, [ask])[0]
        except Exception as exc:  # noqa: BLE001 - this message's 451
            return exc

    def _append(self, held: _Checkout, jobs: list[Job], results: list[Result]) -> list[Result]:
        """Spool a decided batch in one transaction: its results (on failure, every answer but a
        refusal becomes the error)."""
        spooled = _spooled(jobs, results)
        if not spooled:
            return list(results)
        try:
            self.spool.append(spooled, held.connection().connection if self.shared else None)
        except Exception as exc:  # noqa: BLE001 - no 250 for what the commit lost
            return _failed(results, exc)
        return list(results)


@dataclass(frozen=True)
class Begun:
    """A batch decided and not yet spooled: its jobs, their results so far, its connection."""

    jobs: list[Job]
    results: list[Result]
    held: _Checkout
    known: Known | None = None  # decided from the cache: the append checks it
    asks: dict[int, Ask] = field(default_factory=dict)  # then: the questions, to decide again


def _spooled(jobs: list[Job], results: list[Result]) -> list[Spooled]:
    """What the spool keeps of a decided batch: each answer's, and each count alone."""
    spooled = []
    for job, result in zip(jobs, results, strict=True):
        if isinstance(job, Spooled):
            spooled.append(job)
        elif isinstance(result, Answer):
            spooled.append(result.spooled(job))
    return spooled


def _failed(results: list[Result], exc: BaseException | None) -> list[Result]:
    """A batch's results when its append failed: every answer the error, but a refusal's (its
    count goes back to the caller: the handler's tally)."""
    error = exc if exc is not None else RuntimeError("the spool's append failed")
    failed: list[Result] = []
    for result in results:
        if isinstance(result, Answer) and result.problem is not None:
            log.warning("could not count a refusal (%s) now: %s", result.problem[0], error)
            failed.append(replace(result, counted=False))
        elif isinstance(result, BaseException):
            failed.append(result)
        else:
            failed.append(error)
    return failed


class _Checkout:
    """The batch's one connection from the look-ups' pool, checked out when first asked for; a
    new one when the last was invalidated (a lost server, a failed append); back to the pool at
    the end (a batch begun with one behind it takes that one's over)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def connection(self) -> Connection:
        """The batch's connection (checked out now if it has none or lost it)."""
        conn = self.conn
        # invalidated: by a statement on it, or its pool's connection by a failed append
        if conn is None or conn.invalidated or not conn.connection.is_valid:
            if conn is not None:
                conn.close()
            conn = self.conn = self.engine.connect()
        if _cut_off(conn):  # by the server since its last statement: nothing sent on it yet
            conn.invalidate()
            conn.close()
            self.engine.dispose()  # a restart cut the pool's others too (as listgate.driver)
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


def _cut_off(conn: Connection) -> bool:
    """PostgreSQL: the server wrote to this idle connection (the FATAL it sends before closing
    one: a restart, an administrator's terminate), so it is gone though no statement found out
    yet. Asked before a batch's first statement on a connection it holds between batches: a
    statement sent on it would fail after it was sent, its commit unknown (a 451), where a new
    connection spools the batch (the look-ups' round trip finds this out by itself: its SELECT
    goes first)."""
    pgconn = getattr(conn.connection.driver_connection, "pgconn", None)
    if pgconn is None:  # SQLite
        return False
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError, RuntimeError):  # closed already: psycopg refuses its socket
        return True
    return bool(readable)


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
