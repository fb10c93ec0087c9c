"""The gateway's DATA reader alone: CPU per message for gateway.data.Incoming.read.

`python -m bench.data_read [--sizes 4096,65536,10485760] [--piece 65536] [--max-line N]
[--seconds 2]` reads posts of each size (the load client's plain posts: headers and ~90-byte body
lines) through a real asyncio.StreamReader, fed in pieces of --piece bytes as a socket transport
would hand them over, a pipelined QUIT after the final dot, and prints the CPU time per message
and the rate in MB/s. The reader's limit is the gateway's (max_line + 3; max_line defaults to
the settings' default), so this is the same work as one DATA in the gateway without the network
and the rest of the dialogue.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.smtp_load import make_post
from gateway.data import DataBudget, Incoming
from listgate.config import Settings

TAIL = b"QUIT\r\n"  # a pipelining client's next command, left in the reader


def _message(size: int) -> bytes:
    """A post of about size bytes as sent after the 354 (dot-stuffed, with its final dot)."""
    _, raw = make_post("bench@lists.example.org", "read", size=size)
    return raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def _read_once(wire: bytes, piece: int, budget: DataBudget, size: int, max_line: int) -> None:
    reader = asyncio.StreamReader(limit=max_line + 3)

    async def feed() -> None:
        for i in range(0, len(wire), piece):
            reader.feed_data(wire[i : i + piece])
            await asyncio.sleep(0)  # one transport read per turn of the loop

    feeder = asyncio.ensure_future(feed())
    incoming = Incoming(budget, "192.0.2.1", size * 2, max_line)
    await incoming.read(reader)
    await feeder
    assert not incoming.problem, incoming.problem
    incoming.content()
    incoming.release()
    assert await reader.readexactly(len(TAIL)) == TAIL


def measure(
    size: int, piece: int, seconds: float, max_line: int = Settings.max_line_length
) -> tuple[int, float]:
    """(messages read, CPU seconds) reading a size-byte post over and over for about seconds."""
    wire = _message(size) + TAIL
    budget = DataBudget(64 * size + (64 << 20), 4 * size)

    async def run() -> tuple[int, float]:
        count, cpu = 0, 0.0
        stop = time.monotonic() + seconds
        while time.monotonic() < stop or count < 3:
            started = time.process_time()
            await _read_once(wire, piece, budget, size, max_line)
            cpu += time.process_time() - started
            count += 1
        return count, cpu

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    """Print CPU per message for each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4096,65536,10485760", help="message sizes in bytes")
    parser.add_argument("--piece", type=int, default=65536, help="bytes per transport read")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per size")
    parser.add_argument(
        "--max-line", type=int, default=Settings.max_line_length, help="the longest line allowed"
    )
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        count, cpu = measure(size, args.piece, args.seconds, args.max_line)
        per = cpu / count
        sys.stdout.write(
            f"{size:>9} bytes: {count:>6} reads, {1e6 * per:10.1f} us CPU/message, "
            f"{size / per / 1e6:7.1f} MB/s\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
