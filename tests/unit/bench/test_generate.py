"""The synthetic archive generator: deterministic, realistic in shape, streaming."""

from __future__ import annotations

import io
import mailbox
from collections import Counter
from contextlib import closing
from pathlib import Path

from bench.generate import Generator, mboxrd_entry, write_mbox
from listgate.mail.parser import parse


def _mbox(count: int, seed: int = 1) -> bytes:
    out = io.BytesIO()
    write_mbox(out, count, seed, progress=False)
    return out.getvalue()


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    assert _mbox(500, seed=3) == _mbox(500, seed=3)
    assert _mbox(500, seed=3) != _mbox(500, seed=4)


def test_writes_exactly_the_requested_number_of_messages(tmp_path: Path) -> None:
    path = tmp_path / "synth.mbox"
    path.write_bytes(_mbox(777))
    with closing(mailbox.mbox(str(path))) as box:  # mailbox keeps the file open until closed
        assert len(box) == 777


def test_archive_has_the_shapes_real_lists_have() -> None:
    gen = Generator(seed=1)
    parsed = [parse(raw) for raw in gen.messages(2000)]
    ids = {p.message_id for p in parsed}
    assert len(ids) == 2000  # unique Message-IDs
    sizes = Counter(p.chain[0] if p.chain else p.message_id for p in parsed)
    # a long tail of thread sizes
    assert max(sizes.values()) >= 10 * (sum(sizes.values()) / len(sizes))
    assert sum(1 for p in parsed if p.body_html) > 60
    assert sum(1 for p in parsed if p.attachments) > 20
    assert sum(1 for p in parsed if not p.subject.isascii()) > 40  # decoded RFC 2047 subjects
    assert sum(1 for p in parsed if not p.from_name.isascii()) > 40
    assert (
        sum(1 for p in parsed if any(line.startswith("> ") for line in p.body_text.splitlines()))
        > 600
    )
    seen: set[str] = set()
    early = 0
    for p in parsed:
        if p.in_reply_to and p.in_reply_to[0] not in seen:
            early += 1  # the parent arrives later, or never
        seen.add(p.message_id)
    assert early > 10
    assert gen.stats.lost_parents > 0 and gen.stats.delayed > 0
    assert not [d for p in parsed for d in p.defects]


def test_mboxrd_quotes_from_lines_and_round_trips() -> None:
    raw = b"Subject: x\n\nFrom the start\n>From quoted once\nbody\n"
    entry = mboxrd_entry(raw)
    assert b"\n>From the start\n" in entry and b"\n>>From quoted once\n" in entry
    assert entry.startswith(b"From ") and entry.endswith(b"\n\n")


def test_memory_stays_flat_as_the_archive_grows() -> None:
    gen = Generator(seed=2, active=20)
    held = []
    for n, _ in enumerate(gen.messages(8_000), 1):
        if n in (2_000, 8_000):
            held.append(sum(len(t.posts) for t in gen._active) + len(gen._delayed))
    # what the generator keeps is bounded by open threads x recent posts, not by messages made
    assert held[1] <= 20 * 2 * 40 + 200 + 40
    assert held[1] < held[0] * 2
