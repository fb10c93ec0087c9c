"""`listgate import`: stream an mbox (plain, .gz, .xz) or a Maildir into a list's archive.

Memory stays flat: one message is read at a time and committed in batches. The same
parse, dedupe and threading path as live mail, with origin "import" (no notifications).
Running it again skips what is already archived. At the end it gathers the planner's
statistics of the tables it filled (listgate.statistics).
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import logging
import lzma
import os
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from listgate import lists, statistics
from listgate.addresses import Recipient
from listgate.batches import Item, ItemResult, ingest_batch
from listgate.config import Settings
from listgate.db import make_engine, session_factory, writer
from listgate.ingest import DUPLICATE
from listgate.mail.message import ParsedMessage
from listgate.models import Message, MessageVariant, RawMessage
from listgate.parse_process import ParseAhead, parse_all
from listgate.states import PostOrigin

log = logging.getLogger(__name__)

_FROM_ESCAPED = re.compile(rb"^>(>*From )", re.MULTILINE)  # one '>' less on each such line
MBOX_BLOCK = 1 << 20  # bytes of an mbox read at a time
AHEAD = 2  # batches in the parsing process's hands while one is archived
# SQLite's page cache for the import's connection, in KiB: linux-man's indexes (some 15 MB at its
# end) and the full-text index's pages that its merges read stay in memory; in SQLite's 2 MB they
# were read again and spilled to the WAL before the commit, batch after batch (the first 6,204
# linux-man messages: 85,404 page reads and 168,244 writes, with this 34,219 and 122,001)
CACHE_KIB = 32 * 1024
# The cyclic collector's thresholds while importing (Python's are 700, 10, 10). A batch keeps tens
# of thousands of objects alive (its parsed messages, their rows, the ORM's states): at 700 the
# collector went through them about 1,000 times in linux-man, some of those passes over all of
# them (1.0 s of the archiving process's CPU); at 50,000 about 10 times (0.3 s). Nearly all that a
# batch leaves is freed by reference counting at once; only cycles wait for the rarer passes.
GC_THRESHOLD = (50_000, 20, 20)
NO_HEADER_REASON = "no header fields (empty, or text without From: and Date:)"


class SourceError(ValueError):
    """The source cannot be imported; the message says why."""


@dataclass
class Summary:
    """What an import did."""

    imported: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def seen(self) -> int:
        """Messages read from the source."""
        return self.imported + self.duplicates + sum(self.refused.values())

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        out = [
            f"imported:   {self.imported}",
            f"duplicates: {self.duplicates} (already archived, skipped)",
            f"refused:    {sum(self.refused.values())}",
        ]
        out += [f"  {n} x {reason}" for reason, n in self.refused.most_common()]
        return out


def open_stream(raw_file: BinaryIO) -> BinaryIO:
    """A binary stream over an open file, decompressing xz or gzip (by magic bytes)."""
    magic = raw_file.read(6)
    raw_file.seek(0)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw_file, "rb")  # type: ignore[return-value]
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw_file, mode="rb")  # type: ignore[return-value]
    return raw_file


def mbox_messages(stream: BinaryIO, block: int = MBOX_BLOCK) -> Iterator[bytes]:
    """Messages of an mboxrd/mboxo stream, one at a time, '>From ' unescaped.

    A message starts after a line beginning "From " that comes first in the stream (blank lines
    aside), right after the line that started the message before, or after a blank line. The
    stream is read `block` bytes at a time and searched for such lines in C (bytes.find), not
    looped over line by line in Python (that loop was 0.05 ms of a linux-man message).
    """
    buf = b""  # starts at a line start: the current message's first line, or the stream's
    body = -1  # where the current message's lines start in buf; -1 before the first message
    pos = 0  # the line start from which buf is still to be searched
    eof = False
    while not eof:
        data = stream.read(block)
        eof = not data
        buf += data
        end = len(buf) if eof else buf.rfind(b"\n") + 1  # complete lines only, but at the end
        while (sep := _from_line(buf, pos, end)) >= 0:
            if body < 0:
                if buf[:sep].strip():
                    raise SourceError("not an mbox file: it does not start with a 'From ' line")
            elif sep != body and not _blank_before(buf, sep, body):
                pos = buf.find(b"\n", sep, end) + 1 or end
                continue
            else:
                yield _finish(buf[body:sep])
            body = pos = buf.find(b"\n", sep, end) + 1 or end
        if body < 0 and buf[:end].strip():
            raise SourceError("not an mbox file: it does not start with a 'From ' line")
        pos = max(pos, end)
        cut = body if body >= 0 else end  # what is behind is yielded (or blank lines before all)
        buf, pos, body = buf[cut:], pos - cut, body - cut if body >= 0 else -1
    if body >= 0:
        yield _finish(buf[body:])


def _from_line(buf: bytes, pos: int, end: int) -> int:
    """Where the first line starting "From " at or after the line start pos begins (-1: none
    before end)."""
    if pos < end and buf.startswith(b"From ", pos):
        return pos
    found = buf.find(b"\nFrom ", pos, end)
    return found + 1 if found >= 0 else -1


def _blank_before(buf: bytes, line: int, first: int) -> bool:
    """Whether the line before the one starting at `line` is blank (a bare line break); `first`
    is where the message's lines start."""
    if buf[line - 1 : line] != b"\n":
        return False
    if line - 1 == first or buf[line - 2 : line - 1] == b"\n":
        return True  # "\n"
    return buf[line - 2 : line - 1] == b"\r" and (
        line - 2 == first or buf[line - 3 : line - 2] == b"\n"
    )


def _finish(text: bytes) -> bytes:
    """A message's bytes without the blank separator line the mbox writer added, '>From '
    unescaped."""
    if text.endswith(b"\n") and (len(text) == 1 or text[-2:-1] == b"\n"):
        text = text[:-1]
    elif text.endswith(b"\r\n") and (len(text) == 2 or text[-3:-2] == b"\n"):
        text = text[:-2]
    return _FROM_ESCAPED.sub(rb"\1", text) if b">From " in text else text


def maildir_files(path: Path) -> list[Path]:
    """The message files of a Maildir (cur/ and new/), in name order (delivery time)."""
    files = [
        p
        for sub in ("cur", "new")
        for p in (path / sub).iterdir()
        if p.is_file() and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.name)


def _batches(messages: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    """Messages in lists of up to size."""
    pending: list[bytes] = []
    for raw in messages:
        pending.append(raw)
        if len(pending) >= size:
            yield pending
            pending = []
    if pending:
        yield pending


def _reraise_interrupt(exc: Exception) -> None:
    """Raise the Ctrl-C (or SystemExit) that exc was raised in the course of, if any.

    Interrupted inside a statement, SQLAlchemy invalidates the connection, and the rollback on the
    way out raises an error of its own (PendingRollbackError, then BatchAborted) in place of the
    KeyboardInterrupt: read as a failed batch, the import went on, retrying it on a connection
    it could not use.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if not isinstance(cause, Exception):
            raise cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


@contextmanager
def _stop_between_batches() -> Iterator[threading.Event]:
    """Ctrl-C asks the import to stop after the batch it is archiving (committed, so a rerun
    skips it); a second Ctrl-C stops it at once.

    A KeyboardInterrupt raised wherever the signal lands can be lost: inside a finalizer or a
    weakref callback Python prints it as "Exception ignored" and goes on, and the import ran to
    its end with exit status 0. Outside the main thread (no signal handler there) nothing changes.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def asked(_signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)  # the next Ctrl-C interrupts whatever runs

    signal.signal(signal.SIGINT, asked)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


class Importer:
    """Ingest batches of raw messages into one list, committing every `batch` messages."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        list_name: str,
        domain: str,
        *,
        batch: int = 500,
        fallback_days: int = 30,
    ) -> None:
        self.factory, self.list_name, self.domain = factory, list_name, domain
        self.batch, self.fallback_days = batch, fallback_days
        self.summary = Summary()
        self.recipient = Recipient(list_name)
        with factory() as session:
            lists.require(session, list_name)

    def run(self, messages: Iterator[bytes], tick: Callable[[int], None] | None = None) -> Summary:
        """Import every message; tick(n) after each committed batch.

        The first batch is parsed here (an import of one batch starts no process); from the
        second on, batches are parsed in a parsing process, which is handed AHEAD batches beyond
        the one being archived, so that it parses on while the archive is written here, in
        order, even when a batch takes it longer than the one before took to archive.
        """
        ahead: ParseAhead | None = None
        batches = _batches(messages, self.batch)
        first = next(batches, None)
        if first is None:
            return self.summary
        held: tuple[int, list[bytes]] | None = (len(first), self._fresh(first))  # parsed here
        handed: deque[int] = deque()  # how many each batch in the parsing process's hands read
        with _stop_between_batches() as stop:
            try:
                for raws in batches:
                    ahead = ahead or ParseAhead()  # a second batch: worth a process
                    ahead.submit(self._fresh(raws))
                    handed.append(len(raws))
                    if len(handed) < AHEAD:
                        continue  # read on: the parsing process has room for more
                    if held is not None:
                        self._commit(held[0], parse_all(held[1]), tick)
                        held = None
                    else:
                        self._commit(handed.popleft(), ahead.take(), tick)
                    if stop.is_set():
                        raise KeyboardInterrupt
                if held is not None:
                    self._commit(held[0], parse_all(held[1]), tick)
                while handed:
                    assert ahead is not None
                    self._commit(handed.popleft(), ahead.take(), tick)
                    if stop.is_set() and handed:
                        raise KeyboardInterrupt
            finally:
                if ahead is not None:
                    ahead.close()
        return self.summary

    def _fresh(self, raws: list[bytes]) -> list[bytes]:
        """The batch without what is archived already (skipped unparsed)."""
        with self.factory() as session:
            return self._skip_archived(session, raws)

    def _commit(
        self, seen: int, parsed: list[ParsedMessage | None], tick: Callable[[int], None] | None
    ) -> None:
        """One transaction per batch; if it fails, one per message.

        A message without a header field (None: listgate.parse_process.parse_all) is refused, as
        the gateway refuses it."""
        items = [Item(p, (self.recipient,), PostOrigin.IMPORT) for p in parsed if p is not None]
        if len(items) < len(parsed):
            self.summary.refused[NO_HEADER_REASON] += len(parsed) - len(items)
        try:
            with self.factory() as session, session.begin():
                results = ingest_batch(
                    session, items, domain=self.domain, fallback_days=self.fallback_days
                )
        except Exception as exc:  # noqa: BLE001 - BatchAborted, or the commit failed: nothing of it is stored
            _reraise_interrupt(exc)
            log.warning(
                "a batch failed (%s: %s); retrying it one message at a time",
                type(exc).__name__,
                exc,
            )
            results = [self._alone(item) for item in items]
        for result in results:
            self._count(result)
        if tick:
            tick(seen)

    def _alone(self, item: Item) -> ItemResult:
        try:
            with self.factory() as session, session.begin():
                return ingest_batch(
                    session, [item], domain=self.domain, fallback_days=self.fallback_days
                )[0]
        except Exception as exc:  # noqa: BLE001 - counted and reported, the import goes on
            _reraise_interrupt(exc)
            return exc

    def _skip_archived(self, session: Session, raws: list[bytes]) -> list[bytes]:
        """Drop messages already archived with the same bytes (a resumed import) without parsing
        them.

        The bytes alone decide: the same bytes always parse to the same Message-ID, so bytes kept
        on this list (as a message or a variant) are that message, archived.
        """
        mlist = lists.require(session, self.list_name)
        hashes = [hashlib.sha256(r).hexdigest() for r in raws]
        # the stored bytes first, by their indexed hash: a fresh import finds none and is done
        stored = dict(
            session.execute(
                select(RawMessage.id, RawMessage.sha256).where(RawMessage.sha256.in_(set(hashes)))
            ).all()
        )
        have: set[str] = set()
        for raw_of in (Message.raw_id, MessageVariant.raw_id) if stored else ():
            query = (
                select(raw_of)
                .select_from(Message)
                .where(Message.list_id == mlist.id, raw_of.in_(stored))
            )
            if raw_of is MessageVariant.raw_id:
                query = query.join(MessageVariant, MessageVariant.message_pk == Message.id)
            have.update(stored[raw_id] for raw_id in session.scalars(query))
        fresh = [r for r, digest in zip(raws, hashes, strict=True) if digest not in have]
        self.summary.duplicates += len(raws) - len(fresh)
        return fresh

    def _count(self, result: ItemResult) -> None:
        if isinstance(result, Exception):
            log.warning("refused a message: %s: %s", type(result).__name__, result)
            self.summary.refused[f"storage error: {type(result).__name__}"] += 1
        elif result[0] is not None and result[0].status == DUPLICATE:
            self.summary.duplicates += 1
        else:
            self.summary.imported += 1


def sources(path: Path) -> tuple[Iterator[bytes], int, Callable[[], int]]:
    """(messages, total, position): total/position in bytes for an mbox, in files for a Maildir."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise SourceError(f"{path} is a directory but not a Maildir (no cur/ or new/)")
        files = maildir_files(path)
        count = [0]

        def read_files() -> Iterator[bytes]:
            for f in files:
                count[0] += 1
                yield f.read_bytes()

        return read_files(), len(files), lambda: count[0]
    if not path.is_file():
        raise SourceError(f"{path}: no such file or directory")
    raw_file = open(path, "rb")  # noqa: SIM115 - closed by read() below, when done or collected
    stream = open_stream(raw_file)

    def read() -> Iterator[bytes]:
        with raw_file, stream:
            yield from mbox_messages(stream)

    # Progress follows the (compressed) bytes consumed, so the ETA works without a first pass.
    return read(), os.path.getsize(path), raw_file.tell


def run_import(
    settings: Settings, path: Path, list_name: str, *, batch: int = 500, progress: bool = True
) -> Summary:
    """Import path into list_name with a progress bar (rate, ETA) on stderr; returns the summary."""
    # The modules loaded so far (the whole command line program) are never garbage: the cyclic
    # collector stops going through them at each of its full passes over the batches' objects.
    gc.freeze()
    collector = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    engine = make_engine(settings, sqlite_cache_kib=CACHE_KIB)
    try:
        importer = Importer(
            session_factory(writer(engine)),
            list_name,
            settings.domain,
            batch=batch,
            fallback_days=settings.subject_fallback_days,
        )
        messages, total, position = sources(path)
        unit = "msg" if path.is_dir() else "B"
        started = time.monotonic()
        with tqdm(
            total=total,
            unit=unit,
            unit_scale=unit == "B",
            disable=not progress,
            file=sys.stderr,
            desc=f"importing into {list_name}",
            dynamic_ncols=True,
        ) as bar:

            def tick(_n: int) -> None:
                try:
                    bar.update(position() - bar.n)
                except ValueError:  # the source was closed after its last message
                    bar.update((bar.total or 0) - bar.n)
                rate = importer.summary.seen / max(time.monotonic() - started, 1e-6)
                bar.set_postfix(
                    msgs=str(importer.summary.seen), rate=f"{rate:.0f} msg/s", refresh=False
                )

            summary = importer.run(messages, tick)
        log.info(
            "import of %s into %s: %d imported, %d duplicates, %d refused in %.1fs",
            path,
            list_name,
            summary.imported,
            summary.duplicates,
            sum(summary.refused.values()),
            time.monotonic() - started,
        )
        if progress:  # ANALYZE of a large archive takes a while: not a silent pause
            tqdm.write(statistics.ANNOUNCE, file=sys.stderr)
        statistics.gather(engine)
        return summary
    finally:
        engine.dispose()
        gc.set_threshold(*collector)
