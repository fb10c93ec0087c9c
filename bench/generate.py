"""A deterministic synthetic archive: the same seed gives the same mbox, byte for byte.

Shaped like a real list: long-tailed thread sizes (Pareto), replies that quote their parent,
some HTML and attachments, RFC 2047 encoded non-ASCII names and subjects, replies whose
parent never arrives, and replies that arrive before their parent. Written as it is made, so
memory stays flat for a million messages.

    python -m bench.generate --messages 100000 --seed 1 --out /tmp/synth-100k.mbox
"""

from __future__ import annotations

import argparse
import base64
import logging
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

WORDS = [
    "kernel",
    "memory",
    "page",
    "patch",
    "buffer",
    "thread",
    "lock",
    "driver",
    "fix",
    "bug",
    "test",
    "build",
    "release",
    "manual",
    "section",
    "option",
    "value",
    "error",
    "return",
    "system",
    "call",
    "file",
    "socket",
    "signal",
    "process",
    "user",
    "group",
    "example",
    "string",
    "pointer",
    "struct",
    "function",
    "library",
    "header",
    "document",
    "update",
    "change",
    "review",
    "question",
    "answer",
    "version",
    "support",
    "linux",
    "man",
    "command",
    "argument",
    "default",
    "behaviour",
    "note",
    "see",
    "also",
    "description",
    "synopsis",
    "flag",
    "mode",
    "time",
    "clock",
    "timer",
    "queue",
    "list",
    "entry",
    "table",
    "index",
    "path",
    "directory",
    "mount",
    "network",
    "address",
    "port",
    "device",
    "interrupt",
    "handler",
    "cache",
    "read",
    "write",
    "open",
    "close",
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "on",
    "be",
    "this",
    "by",
    "are",
    "not",
    "or",
    "from",
    "at",
    "which",
    "have",
]
FIRST = [
    "Alice",
    "Bob",
    "Carol",
    "Dave",
    "Erin",
    "Frank",
    "Grace",
    "Heidi",
    "Ivan",
    "Judy",
    "Mallory",
    "Niaj",
    "Olivia",
    "Peggy",
    "Rupert",
    "Sybil",
    "Trent",
    "Victor",
    "Walter",
    "Yolanda",
]
LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Wilson",
    "Evans",
    "Thomas",
    "Roberts",
    "Walker",
    "Wright",
    "Green",
    "Hall",
]
NON_ASCII_NAMES = (
    "José Müller",
    "Zoë Ångström",
    "李雷",
    "Дмитрий Иванов",
    "Björn Þórsson",
    "Łukasz Żółć",
    "ゆき 佐藤",
    "François Çelik",
    "Αλέξανδρος Παπαδόπουλος",
)
NON_ASCII_SUBJECTS = (
    "Über die Speicherverwaltung",
    "problème de mémoire",
    "ошибка в драйвере",
    "内核 补丁 问题",
    "Größe des Puffers",
    "señal perdida",
    "カーネルのバグ",
)
MAX_ACTIVE = 300  # open conversations at any time (fewer for small archives): bounds memory
KEEP_PER_THREAD = 40  # recent messages a reply may answer


@dataclass
class _Post:
    msgid: str
    chain: tuple[str, ...]
    quote: tuple[str, ...]


@dataclass
class _Thread:
    subject: str
    remaining: int
    count: int = 0
    posts: list[_Post] = field(default_factory=list)


@dataclass
class Stats:
    """What a run produced."""

    messages: int = 0
    threads: int = 0
    largest_thread: int = 0
    lost_parents: int = 0
    delayed: int = 0
    html: int = 0
    attachments: int = 0
    bytes: int = 0


class Generator:
    """Yields raw messages (bytes, CRLF-free LF lines) for a seed."""

    def __init__(
        self,
        seed: int = 1,
        start: datetime | None = None,
        span_days: float = 7300,
        domain: str = "lists.example.org",
        list_name: str = "synth",
        max_thread: int = 2000,
        active: int = 0,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.start = start or datetime(2004, 1, 1, tzinfo=UTC)
        self.span = timedelta(days=span_days)
        self.list_addr = f"{list_name}@{domain}"
        self.max_thread = max_thread
        self.stats = Stats()
        self._active: list[_Thread] = []
        self._delayed: list[tuple[int, bytes]] = []
        self._people = [self._person(i) for i in range(4000)]
        self.active = active
        self.max_active = active or MAX_ACTIVE

    def _person(self, i: int) -> tuple[str, str]:
        rng = self.rng
        if i % 6 == 2:
            name = NON_ASCII_NAMES[i % len(NON_ASCII_NAMES)]
        else:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        return name, f"user{i}@example{i % 37}.org"

    def messages(self, count: int) -> Iterator[bytes]:
        """count raw messages in arrival order (delayed replies included in the count)."""
        self.max_active = self.active or max(10, min(MAX_ACTIVE, count // 100))
        step = 0
        emitted = 0
        total_seconds = self.span.total_seconds()
        while emitted < count:
            when = self.start + timedelta(
                seconds=total_seconds * step / max(count, 1) + self.rng.random() * 600
            )
            raw = self._next(step, when)
            step += 1
            ready = [d for d in self._delayed if d[0] <= step]
            if ready:
                self._delayed = [d for d in self._delayed if d[0] > step]
            outs = [r for _, r in ready]
            if raw is not None:
                if self.rng.random() < 0.03 and len(self._delayed) < 200:
                    self._delayed.append((step + self.rng.randint(50, 800), raw))
                    self.stats.delayed += 1
                else:
                    outs.append(raw)
            for out in outs:
                if emitted >= count:
                    break
                emitted += 1
                self.stats.messages += 1
                self.stats.bytes += len(out)
                yield out
        # whatever is still held back was never sent: those replies' children have lost parents

    def _next(self, step: int, when: datetime) -> bytes | None:
        """Make one message; None when it is 'lost' (made, threaded, never delivered)."""
        rng = self.rng
        if len(self._active) < self.max_active or rng.random() < 0.02:
            size = min(int(rng.paretovariate(1.1)), self.max_thread)
            subject = self._subject()
            thread = _Thread(subject=subject, remaining=size)
            self._active.append(thread)
            self.stats.threads += 1
            parent = None
        else:
            index = rng.randrange(len(self._active))
            thread = self._active[index]
            recent = thread.posts[-KEEP_PER_THREAD:]
            # mostly answer one of the latest posts, sometimes an early one: deep and bushy trees
            parent = (
                recent[-1 - min(int(rng.expovariate(0.5)), len(recent) - 1)] if recent else None
            )
        msgid = f"{step:x}.{rng.getrandbits(40):010x}@gen{self.seed}.example"
        chain = (parent.chain + (parent.msgid,))[-30:] if parent else ()
        person = self._people[int(rng.paretovariate(1.3)) % len(self._people)]
        body = self._body(parent, person[0])
        thread.posts.append(_Post(msgid, chain, tuple(body[:3])))
        if len(thread.posts) > KEEP_PER_THREAD * 2:
            del thread.posts[:KEEP_PER_THREAD]
        thread.remaining -= 1
        thread.count += 1
        self.stats.largest_thread = max(self.stats.largest_thread, thread.count)
        if thread.remaining <= 0:
            self._active.remove(thread)
        if parent is not None and rng.random() < 0.01:
            self.stats.lost_parents += 1
            return None
        subject = thread.subject if parent is None else f"Re: {thread.subject}"
        return self._render(msgid, chain, subject, person, when, body)

    def _subject(self) -> str:
        rng = self.rng
        if rng.random() < 0.08:
            return rng.choice(NON_ASCII_SUBJECTS) + f" #{rng.randrange(10000)}"
        prefix = "[PATCH] " if rng.random() < 0.2 else ""
        return prefix + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))

    def _body(self, parent: _Post | None, author: str) -> list[str]:
        rng = self.rng
        lines: list[str] = []
        if parent is not None:
            lines.append(f"On {rng.choice(FIRST)} wrote:")
            lines.extend("> " + q for q in parent.quote)
            lines.append("")
        for _ in range(rng.randint(2, 12)):
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))))
        if rng.random() < 0.02:
            lines.append("From the manual: a line an mbox writer must quote.")
        lines.extend(["", "-- ", author])
        return lines

    def _render(
        self,
        msgid: str,
        chain: tuple[str, ...],
        subject: str,
        person: tuple[str, str],
        when: datetime,
        body: list[str],
    ) -> bytes:
        rng = self.rng
        offset = timezone(timedelta(minutes=rng.choice((0, 60, 120, -300, -420, 330, 540))))
        name, addr = person
        headers = [
            f"From: {_encode(name)} <{addr}>",
            f"To: {self.list_addr}",
            f"Subject: {_encode(subject)}",
            f"Date: {format_datetime(when.astimezone(offset))}",
            f"Message-ID: <{msgid}>",
        ]
        if chain:
            headers.append(f"In-Reply-To: <{chain[-1]}>")
            headers.append("References: " + "\n ".join(f"<{c}>" for c in chain[-12:]))
        headers.append("MIME-Version: 1.0")
        text = "\n".join(body) + "\n"
        roll = rng.random()
        if roll < 0.08:
            self.stats.html += 1
            return _join(headers + _multipart("alternative", msgid), _alternative(text, msgid))
        if roll < 0.11:
            self.stats.attachments += 1
            return _join(
                headers + _multipart("mixed", msgid),
                _mixed(text, msgid, rng.randbytes(rng.randint(512, 24000))),
            )
        if not text.isascii():
            return _join(
                headers
                + ['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: 8bit"],
                text,
            )
        return _join(headers + ['Content-Type: text/plain; charset="us-ascii"'], text)


def _encode(value: str) -> str:
    """RFC 2047 for non-ASCII header text, as real mail clients send it."""
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def _join(headers: list[str], body: str) -> bytes:
    return ("\n".join(headers) + "\n\n" + body).encode("utf-8")


def _multipart(kind: str, msgid: str) -> list[str]:
    return [f'Content-Type: multipart/{kind}; boundary="{kind[:3]}-{msgid.split("@")[0]}"']


def _alternative(text: str, msgid: str) -> str:
    boundary = "alt-" + msgid.split("@")[0]
    html = (
        "<html><body>"
        + "".join(f"<p>{line}</p>" for line in text.splitlines() if line)
        + "</body></html>\n"
    )
    return (
        f"This is a multi-part message in MIME format.\n\n--{boundary}\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        f"{text}\n"
        f"--{boundary}\nContent-Type: text/html; charset=utf-8\n"
        f"Content-Transfer-Encoding: 8bit\n\n{html}\n"
        f"--{boundary}--\n"
    )


def _mixed(text: str, msgid: str, data: bytes) -> str:
    boundary = "mix-" + msgid.split("@")[0]
    encoded = base64.encodebytes(data).decode("ascii")
    return (
        f"This is a multi-part message in MIME format.\n\n--{boundary}\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        f"{text}\n"
        f'--{boundary}\nContent-Type: application/octet-stream; name="trace-{msgid[:6]}.bin"\n'
        f'Content-Disposition: attachment; filename="trace-{msgid[:6]}.bin"\n'
        f"Content-Transfer-Encoding: base64\n\n{encoded}\n--{boundary}--\n"
    )


def mboxrd_entry(raw: bytes, sender: bytes = b"MAILER-DAEMON") -> bytes:
    """One mboxrd entry: a From_ line, the message with >From quoting, a blank line."""
    out = [b"From " + sender + b" Thu Jan  1 00:00:00 1970\n"]
    for line in raw.splitlines(keepends=True):
        stripped = line.lstrip(b">")
        out.append(b">" + line if stripped.startswith(b"From ") else line)
    if not raw.endswith(b"\n"):
        out.append(b"\n")
    out.append(b"\n")
    return b"".join(out)


def write_mbox(
    out: BinaryIO, count: int, seed: int = 1, progress: bool = True, **kwargs: object
) -> Stats:
    """Stream count messages to out as mboxrd; returns what was written."""
    gen = Generator(seed=seed, **kwargs)  # type: ignore[arg-type]
    items: Iterable[bytes] = gen.messages(count)
    if progress:
        from tqdm import tqdm

        items = tqdm(
            items,
            total=count,
            unit="msg",
            desc=f"generate {count}",
            file=sys.stderr,
            mininterval=1.0,
        )
    out.writelines(mboxrd_entry(raw) for raw in items)
    return gen.stats


def ensure_mbox(path: Path, count: int, seed: int = 1, progress: bool = True) -> Path:
    """Generate path once (atomically); reuse it when it already exists."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb", buffering=1 << 20) as fh:
        write_mbox(fh, count, seed, progress)
    tmp.rename(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: write a synthetic mbox."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="mbox path ('-' for stdout)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if str(args.out) == "-":
        stats = write_mbox(sys.stdout.buffer, args.messages, args.seed, not args.quiet)
    else:
        with open(args.out, "wb", buffering=1 << 20) as fh:
            stats = write_mbox(fh, args.messages, args.seed, not args.quiet)
    log.info("%s", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
