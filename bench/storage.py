"""Bytes on disk per message on linux-man: our database (tables, indexes) against public-inbox."""

from __future__ import annotations

import logging
from pathlib import Path

from bench.common import Context, NotAvailable, Row
from bench.import_rate import linux_man_archive, linux_man_peer

log = logging.getLogger(__name__)
NAME = "storage"


def du(path: Path) -> int:
    """Bytes of every file under path."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(ctx: Context) -> list[Row]:
    """One row: bytes per message, the mbox's own size per message, public-inbox's."""
    imported = linux_man_archive(ctx)
    if not imported.messages:
        raise NotAvailable("the linux-man archive holds no messages")
    ours = imported.archive.db_bytes() / imported.messages
    mbox = imported.mbox.stat().st_size / imported.messages
    value = f"{ours:,.0f} bytes/msg (the mbox itself: {mbox:,.0f} bytes/msg)"
    ratio, note = "", ""
    try:
        peer = linux_man_peer(ctx)
        theirs = du(peer.inbox_dir) / max(1, peer.count())
        value += f"; public-inbox {theirs:,.0f} bytes/msg"
        ratio = f"{ours / theirs:.2f}"
    except NotAvailable as exc:
        note = f"public-inbox: {exc}"
    return [
        Row(
            NAME,
            f"linux-man ({imported.messages:,} msgs), database + indexes",
            value,
            ratio,
            "",
            "",
            note,
        )
    ]
