"""The mboxes benchmarks read: linux-man (decompressed once) and synthetic archives, cached."""

from __future__ import annotations

import lzma
import os
import shutil
from pathlib import Path

from bench.common import LINUX_MAN, Context, NotAvailable
from bench.generate import ensure_mbox

GENERATOR_VERSION = 1


def cache_dir() -> Path:
    """Where decompressed and generated corpora (and prefilled archives) are kept between runs."""
    base = Path(
        os.environ.get("LISTGATE_BENCH_CACHE", "") or Path.home() / ".cache" / "listgate-bench"
    )
    base.mkdir(parents=True, exist_ok=True)
    return base


def linux_man(limit: int = 0) -> Path:
    """linux-man as a plain mboxrd (its first `limit` messages when limit > 0)."""
    if not LINUX_MAN.exists():
        raise NotAvailable(f"{LINUX_MAN} is missing")
    path = cache_dir() / (f"linux-man-first{limit}.mbox" if limit else "linux-man.mbox")
    if path.exists():
        return path
    tmp = path.with_suffix(".part")
    seen = 0
    with lzma.open(LINUX_MAN, "rb") as src, open(tmp, "wb", buffering=1 << 20) as dst:
        if not limit:
            shutil.copyfileobj(src, dst, 1 << 20)
        else:
            for line in src:
                if line.startswith(b"From "):
                    seen += 1
                    if seen > limit:
                        break
                dst.write(line)
    tmp.rename(path)
    return path


def synthetic(ctx: Context, count: int, seed: int = 1) -> Path:
    """The synthetic archive of count messages (generated once, kept in the cache)."""
    return ensure_mbox(
        cache_dir() / f"synthetic-v{GENERATOR_VERSION}-s{seed}-{count}.mbox",
        count,
        seed,
        progress=count >= 100_000,
    )
