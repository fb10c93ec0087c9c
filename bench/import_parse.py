"""The parsing process's CPU per message: `listgate import`'s parse of a whole mbox, in one process.

`python bench/import_parse.py MBOX` splits MBOX with the importer's own splitter, then parses every
message as the parsing process does (listgate.parse_process.parse_all, a batch of 500 at a time)
and prints the CPU seconds of the parse alone (time.process_time around each batch; the split and
the reading are outside it). `--rounds N` parses the corpus N times and prints each round (the
first round includes mail-parser's import). `--profile FILE` writes a cProfile of one round, timed
in CPU seconds. It imports nothing from bench/, so it can be run with another checkout's
interpreter (a side by side pair: the same script, each checkout's `listgate`).
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from pathlib import Path


def _messages(path: Path) -> list[bytes]:
    from listgate.importer import mbox_messages, open_stream

    with open(path, "rb") as raw_file:
        return list(mbox_messages(open_stream(raw_file)))


def _round(raws: list[bytes], batch: int = 500) -> float:
    """CPU seconds to parse raws, batch by batch as the parsing process does."""
    from listgate.parse_process import parse_all

    spent = 0.0
    for start in range(0, len(raws), batch):
        chunk = raws[start : start + batch]
        t0 = time.process_time()
        parse_all(chunk)
        spent += time.process_time() - t0
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mbox", type=Path)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", type=Path, default=None)
    args = ap.parse_args()
    raws = _messages(args.mbox)
    for n in range(args.rounds):
        cpu = _round(raws)
        sys.stdout.write(
            f"round {n + 1}: {len(raws)} messages, parse CPU {cpu:.2f} s,"
            f" {cpu / len(raws) * 1000:.3f} ms a message\n"
        )
        sys.stdout.flush()
    if args.profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(_round, raws)
        profiler.dump_stats(args.profile)
        sys.stdout.write(f"profile written to {args.profile}\n")


if __name__ == "__main__":
    main()
