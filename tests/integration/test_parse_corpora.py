"""What the archive shows of every real message stays the same when parsing gets faster.

Every message of the corpora (linux-man, hyperkitty-testdata, mailman-eml, bounces) is parsed
and each field that is stored or derived from it (ids, subject and its normalised form, author,
addresses, dates, bodies, attachments, defects, thread keys, the header scan the gateway does)
is hashed, 100 messages to a digest. tests/data/parse-digests.json holds the digests the parser
gave before it was made faster (at f2f6bcb); a change that alters what is shown must change
that file on purpose. To write it from a tree: `python -m tests.integration.test_parse_corpora`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from listgate.forest import thread_keys
from listgate.mail.parser import parse, parse_head, parse_message_id
from listgate.mail.subjects import normalize_subject
from tests.support.corpora import corpus, linux_man
from tests.support.tracer import traced_first

pytestmark = pytest.mark.integration

DIGESTS = Path(__file__).parents[1] / "data" / "parse-digests.json"
ARRIVAL = datetime(2026, 11, 30, tzinfo=UTC)  # the date of mail whose own Date is unusable
CHUNK = 100
FIELDS = (
    *("message_id", "message_id_generated", "in_reply_to", "references", "subject"),
    *("from_name", "from_addr", "to_addrs", "cc_addrs", "date_offset", "date_header"),
    *("date_generated", "body_text", "body_html", "is_flowed", "auto_submitted"),
    *("precedence", "headers", "defects", "chain"),
)


def derived(raw: bytes) -> list[Any]:
    """Every stored or derived field of a message, as JSON-able values."""
    parsed = parse(raw, ARRIVAL)
    head = parse_head(raw)
    keys = thread_keys(parsed.message_id, parsed.in_reply_to, parsed.references)
    return [
        *(getattr(parsed, name) for name in FIELDS),
        parsed.date.isoformat(),
        [(a.filename, a.content_type, a.sha256) for a in parsed.attachments],
        normalize_subject(parsed.subject),
        keys.named,
        [head.message_id, head.from_addr, head.auto_submitted, head.precedence, head.headers],
        parse_message_id(raw),
    ]


def sources() -> dict[str, Iterator[bytes]]:
    """Each corpus's messages, in a fixed order."""
    files = {
        name: sorted(corpus(*parts).glob(pattern))
        for name, parts, pattern in (
            ("hyperkitty-testdata", ("hyperkitty-testdata",), "*.txt"),
            ("mailman-eml", ("mailman-eml", "eml"), "*.eml"),
            ("bounces", ("bounces", "data"), "*"),
        )
    }
    out = {"linux-man": linux_man(10**9)}
    out.update({name: (p.read_bytes() for p in paths) for name, paths in files.items()})
    return out


def digests(messages: Iterator[bytes]) -> list[str]:
    """One digest per CHUNK messages of what parsing them derives."""
    out: list[str] = []
    h = hashlib.sha256()
    n = 0
    for n, raw in enumerate(messages, 1):
        h.update(
            json.dumps(derived(raw), default=str, ensure_ascii=False).encode(
                "utf-8", "surrogatepass"
            )
        )
        if n % CHUNK == 0:
            out.append(h.hexdigest()[:24])
            h = hashlib.sha256()
    if n % CHUNK:
        out.append(h.hexdigest()[:24])
    return out


# The linux-man corpus, 17,885 messages, took 156 s in one test in CI (beside three other test
# processes): it is checked in shards of SHARD chunks (2,000 messages, about 10 s alone) that the
# test processes share. The last shard reads to the corpus's end: together they check every
# message and the corpus's length, as the one test did. Each shard's first chunk is parsed under
# `make test`'s coverage tracer, the rest with it paused (tests.support.tracer: half the CPU).
SHARD = 20
LINUX_MAN_SHARDS = -(-len(json.loads(DIGESTS.read_text())["linux-man"]) // SHARD)


def shard(name: str, index: int) -> tuple[Iterator[bytes], slice]:
    """The messages of one shard of corpus `name` and which of its digests they give."""
    messages = sources()[name]
    if name != "linux-man":
        return messages, slice(None)
    first, last = index * SHARD, (index + 1) * SHARD
    to_end = index == LINUX_MAN_SHARDS - 1
    wanted = islice(messages, first * CHUNK, None if to_end else last * CHUNK)
    return wanted, slice(first, None if to_end else last)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("name", "index"),
    [
        *(
            pytest.param("linux-man", i, marks=pytest.mark.long(26))
            for i in range(LINUX_MAN_SHARDS)
        ),
        *(("hyperkitty-testdata", 0), ("mailman-eml", 0), ("bounces", 0)),
    ],
)
def test_what_is_shown_of_every_corpus_message_is_unchanged(name: str, index: int) -> None:
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    messages, part = shard(name, index)
    expected = json.loads(DIGESTS.read_text())[name][part]
    got = digests(traced_first(messages, CHUNK))  # the first CHUNK under coverage's tracer
    assert len(got) == len(expected), (len(got), len(expected))
    changed = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    first = part.start or 0
    assert not changed, (
        f"messages {[((first + i) * CHUNK, (first + i + 1) * CHUNK) for i in changed][:5]} changed"
    )


if __name__ == "__main__":  # python -m tests.integration.test_parse_corpora: write the digests
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    DIGESTS.write_text(json.dumps({k: digests(v) for k, v in sources().items()}, indent=1) + "\n")
    sys.stderr.write(f"wrote {DIGESTS}\n")
