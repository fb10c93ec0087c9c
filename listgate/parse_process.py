"""The parsing process of `listgate import`: `python -m listgate.parse_process`, and ParseAhead,
the importer's side of it.

listgate.importer starts it and writes it batches of raw messages (a pickled list of bytes per
batch) on its standard input; for each batch it writes back on its standard output the length
of a pickle, then the pickle: the parsed messages without their raw bytes (the importer holds
them and puts them back by index; None for a message without a header field, which is refused
unparsed), or, if parsing failed, the error's text. It imports only the parser (about 0.1 s of CPU),
where a multiprocessing child would import the program's main module again (for the `listgate`
command, the whole CLI: about 1.2 s).

It never outlives the importer: it ends at the end of its input, which comes when the importer
closes the pipe or dies (SIGKILL included), and a write to an importer that is gone ends it too.
The importer starts it in a process group of its own, so Ctrl-C at the terminal reaches only
the importer, which then ends it (ParseAhead.close).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from typing import IO, BinaryIO

from listgate.mail.message import ParsedMessage
from listgate.mail.mime import parser_class
from listgate.mail.parser import parse
from listgate.mail.shape import headerless

log = logging.getLogger(__name__)

Fields = tuple[object, ...]  # a ParsedMessage's fields but its raw bytes, then DERIVED, in order
Reply = list[Fields | None] | str  # the batch parsed (None: no header field), or what failed
_SIZE = struct.Struct("<Q")  # each reply's length in bytes, before its pickle
_NAMES = [f.name for f in dataclasses.fields(ParsedMessage)]
assert _NAMES[0] == "raw", "with_raw() gives the bytes as the first field"
# What archiving reads of a message that is worked out from the message alone: ParsedMessage's
# cached properties, computed here (where there is time to spare while the importer archives)
# and put in the cache of the message rebuilt in the importer, which then computes none of them.
DERIVED = ("sha256", "subject_norm", "thread_keys")
_REBUILT = (*_NAMES, *DERIVED)  # a rebuilt message's instance dict: raw, the reply's values


def parse_all(raws: list[bytes]) -> list[ParsedMessage | None]:
    """Parse a batch; None for a message without a single header field (listgate.mail.shape.
    headerless: what the gateway refuses), which the importer refuses unparsed."""
    return [None if headerless(raw) else parse(raw) for raw in raws]


def without_raw(parsed: list[ParsedMessage | None]) -> list[Fields | None]:
    """The messages without their bytes, as tuples (pickled and unpickled in about 0.04 ms a
    linux-man message, where the objects took 0.06 with their bytes and 0.05 without), their
    DERIVED values worked out and appended."""
    names = [*_NAMES[1:], *DERIVED]
    return [None if p is None else tuple([getattr(p, name) for name in names]) for p in parsed]


def with_raw(parsed: list[Fields | None], raws: list[bytes]) -> list[ParsedMessage | None]:
    """The messages again, with their bytes matched by index and their DERIVED values cached.

    Each is made as pickle makes one (its instance dict filled in one update, which is where
    functools.cached_property keeps what it computed too), not through the dataclass's frozen
    __init__, which sets each of its 20 fields with object.__setattr__ (4,000 linux-man messages,
    the collector frozen: 7.5-7.8 µs a message, where __init__ took 9.9-12.5)."""
    out: list[ParsedMessage | None] = []
    new = object.__new__
    for values, raw in zip(parsed, raws, strict=True):
        if values is None:
            out.append(None)
            continue
        message = new(ParsedMessage)
        message.__dict__.update(zip(_REBUILT, (raw, *values), strict=True))
        out.append(message)
    return out


def _loads(data: bytes) -> Reply:
    """A reply unpickled with the cyclic collector paused: a linux-man batch of 500 is some 55,000
    new tuples and strings (headers for the most part), none of them garbage yet, and counting
    them the collector ran about 80 passes a batch over its young objects and, every tenth, its
    older ones (4,000 linux-man messages: 29-42 µs a message unpickled, 12-14 paused). Its count
    goes on while it is paused: one pass after, over the new objects."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return pickle.loads(data)
    finally:
        if paused:
            gc.enable()


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer each batch read from requests on replies, until requests end."""
    while True:
        try:
            raws = pickle.load(requests)
        except (EOFError, pickle.UnpicklingError):  # closed, or cut short by the importer's end
            return
        try:
            reply: Reply = without_raw(parse_all(raws))
        except Exception as exc:  # noqa: BLE001 - told to the importer, which parses the batch itself
            reply = f"{type(exc).__name__}: {exc}"
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(_SIZE.pack(len(data)))
        replies.write(data)
        replies.flush()


class ParseAhead:
    """The importer's side: one parsing process (this module) that parses the batches handed to
    it, in order, while the importer archives the ones before. submit() a batch, take() the
    oldest submitted back.

    Two threads keep the process busy: one writes the submitted batches to it (a batch is larger
    than the pipe, and the process reads the next only when it has answered the one before), one
    reads its replies as they come (a reply nobody reads would block it before the next batch).
    The replies are unpickled by take(), in the importer's thread.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "listgate.parse_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            process_group=0,  # Ctrl-C is the importer's to handle; it ends the process with close()
        )
        self.pending: collections.deque[list[bytes]] = collections.deque()  # submitted, not taken
        self.broken = False
        self._requests: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[bytes | BaseException] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._write, name="parse-ahead-writer", daemon=True),
            threading.Thread(target=self._read, name="parse-ahead-reader", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, raws: list[bytes]) -> None:
        """Hand raws to the parsing process (parsed after the batches submitted before)."""
        self.pending.append(raws)
        if not self.broken:
            self._requests.put(raws)

    def take(self) -> list[ParsedMessage | None]:
        """The oldest batch submitted, parsed; parsed here when the parsing process failed (it
        died, ran out of memory), and every batch after it too."""
        raws = self.pending.popleft()
        if not self.broken:
            reply = self._replies.get()
            if isinstance(reply, BaseException):
                self._failed(reply)
            else:
                try:
                    parsed: Reply = _loads(reply)
                except pickle.UnpicklingError as exc:
                    self._failed(exc)
                else:
                    if not isinstance(parsed, str):
                        return with_raw(parsed, raws)
                    log.warning(
                        "the parsing process failed on a batch (%s); parsing it here", parsed
                    )
        return parse_all(raws)

    def _write(self) -> None:
        """The writer thread: each submitted batch, in order, until close(); then, or when a write
        fails (the process died: BrokenPipeError), the process's input ends, and so does it (the
        reader then tells take())."""
        with contextlib.suppress(Exception):
            while (raws := self._requests.get()) is not None:
                # pickled onto the pipe a frame at a time: no copy of the whole batch
                pickle.dump(raws, self._stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._stdin.flush()
        with contextlib.suppress(OSError):
            self._stdin.close()

    def _read(self) -> None:
        """The reader thread: each reply (its length, then its pickle), until the process ends."""
        try:
            while True:
                head = self._stdout.read(_SIZE.size)
                if len(head) < _SIZE.size:
                    raise EOFError("the parsing process ended" + (" mid-reply" if head else ""))
                (length,) = _SIZE.unpack(head)
                data = self._stdout.read(length)
                if len(data) < length:
                    raise EOFError("the parsing process ended mid-reply")
                self._replies.put(data)
        except Exception as exc:  # noqa: BLE001 - take() must hear of any end, or wait forever
            self._replies.put(exc)

    def _failed(self, exc: BaseException) -> None:
        log.warning(
            "the parsing process failed (%s: %s); parsing the rest in the importer",
            type(exc).__name__,
            exc,
        )
        self.broken = True

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def close(self) -> None:
        """End the parsing process, waited for, so none is left: at the end of its input when
        every batch was taken; at once (SIGTERM) when some were not (an interrupted import)."""
        if self.pending and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
        self._requests.put(None)
        self._threads[0].join(timeout=30)
        with contextlib.suppress(OSError):  # BrokenPipeError: it is gone already
            self._stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._threads[1].join(timeout=30)
        with contextlib.suppress(OSError):
            self._stdout.close()


def main() -> None:
    """Serve stdin/stdout; anything else printed goes to stderr, not into the replies.

    mail-parser is imported first, then what is loaded by then (the modules: some 17,000 objects
    the collector tracks) is moved out of its reach (gc.freeze): its passes over the older
    generations walked all of it again each time, where a batch leaves nothing behind (6,000
    linux-man messages parsed: 18-19 µs a message in the collector, 10-11 frozen)."""
    parser_class()
    gc.freeze()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin.buffer, replies)
        replies.close()
    except BrokenPipeError:  # the importer is gone: nothing to answer, nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), replies.fileno())


if __name__ == "__main__":
    main()
