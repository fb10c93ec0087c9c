"""The shared real-mail corpora (../shared/corpora) for tests: read where they lie, streamed, never copied."""

from __future__ import annotations

from itertools import islice
from typing import Iterator

from listgate.importer import mbox_messages, open_stream
from tests.conftest import CORPORA

LINUX_MAN = CORPORA / "linux-man" / "linux-man.mbox.xz"


def linux_man(limit: int) -> Iterator[bytes]:
    """The first `limit` messages of the linux-man mboxrd archive, read by the importer's own mbox reader."""
    with open(LINUX_MAN, "rb") as raw:
        yield from islice(mbox_messages(open_stream(raw)), limit)
