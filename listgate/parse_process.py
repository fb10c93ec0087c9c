"""The parsing process of `listgate import`: `python -m listgate.parse_process`, and ParseAhead,
the importer's side of it.

listgate.importer starts it and writes it batches of raw messages (a pickled list of bytes per
batch) on its standard input; for each batch it writes back one pickle on its standard output:
the parsed messages without their raw bytes (the importer holds them and puts them back by
index; None for a message without a header field, which is refused unparsed), or, if parsing
failed, the error's text. It imports only the parser (about 0.1 s of CPU),
where a multiprocessing child would import the program's main module again (for the `listgate`
command, the whole CLI: about 1.2 s).

It never outlives the importer: it ends at the end of its input, which comes when the importer
closes the pipe or dies (SIGKILL included), and a write to an importer that is gone ends it too.
The importer starts it in a process group of its own, so Ctrl-C at the terminal reaches only
the importer, which then closes the pipes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import subprocess
import sys
from typing import IO, BinaryIO

from listgate.mail.message import ParsedMessage
from listgate.mail.parser import parse
from listgate.mail.shape import headerless

log = logging.getLogger(__name__)

Fields = tuple[object, ...]  # a ParsedMessage's fields but its raw bytes, in order
Reply = list[Fields | None] | str  # the batch parsed (None: no header field), or what failed
_NAMES = [f.name for f in dataclasses.fields(ParsedMessage)]
assert _NAMES[0] == "raw", "with_raw() gives the bytes as the first field"


def parse_all(raws: list[bytes]) -> list[ParsedMessage | None]:
    """Parse a batch; None for a message without a single header field (listgate.mail.shape.
    headerless: what the gateway refuses), which the importer refuses unparsed."""
    return [None if headerless(raw) else parse(raw) for raw in raws]


def without_raw(parsed: list[ParsedMessage | None]) -> list[Fields | None]:
    """The messages without their bytes, as tuples: pickled and unpickled in about 0.04 ms a
    linux-man message, where the objects took 0.06 with their bytes and 0.05 without."""
    return [None if p is None else tuple([getattr(p, name) for name in _NAMES[1:]]) for p in parsed]


def with_raw(parsed: list[Fields | None], raws: list[bytes]) -> list[ParsedMessage | None]:
    """The messages again, with their bytes matched by index."""
    return [
        None if fields is None else ParsedMessage(raw, *fields)  # type: ignore[arg-type]
        for fields, raw in zip(parsed, raws, strict=True)
    ]


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
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


class ParseAhead:
    """The importer's side: one parsing process (this module) that parses the next batch while
    the current one is archived. One batch at a time is in its hands: submit() it, take() it
    back."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "listgate.parse_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            process_group=0,  # Ctrl-C is the importer's to handle; it ends the process with close()
        )
        self.pending: list[bytes] | None = None
        self.broken = False

    def submit(self, raws: list[bytes]) -> None:
        """Start parsing raws (the batch before must have been taken)."""
        assert self.pending is None, "take() the batch before submitting the next"
        self.pending = raws
        if self.broken:
            return
        try:
            pickle.dump(raws, self._stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._stdin.flush()
        except OSError as exc:  # it died (BrokenPipeError)
            self._failed(exc)

    def take(self) -> list[ParsedMessage | None]:
        """The batch submitted last, parsed; parsed here when the parsing process failed (it died,
        ran out of memory), and every batch after it too."""
        raws, self.pending = self.pending or [], None
        if not self.broken:
            try:
                reply: Reply = pickle.load(self._stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._failed(exc)
            else:
                if not isinstance(reply, str):
                    return with_raw(reply, raws)
                log.warning("the parsing process failed on a batch (%s); parsing it here", reply)
        return parse_all(raws)

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
        """End the parsing process: at the end of its input, or at its next write, if it was still
        parsing a batch nobody takes (an interrupted import). Waited for, so none is left.

        Its output is closed first: a process blocked writing a reply would otherwise never read
        the rest of a batch that closing its input flushes to it."""
        for pipe in (self._stdout, self._stdin):
            with contextlib.suppress(OSError):  # BrokenPipeError: it is gone already
                pipe.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    """Serve stdin/stdout; anything else printed goes to stderr, not into the replies."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin.buffer, replies)
        replies.close()
    except BrokenPipeError:  # the importer is gone: nothing to answer, nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), replies.fileno())


if __name__ == "__main__":
    main()
