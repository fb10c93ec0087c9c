"""The personal copies of one post, rendered once: only the unsubscribe link differs per copy."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from listgate.models import MailingList, Message
from worker.context import WorkerContext
from worker.headers import ListInfo, build_copy
from worker.longlines import fit_lines
from worker.relay_sessions import wire_form


@dataclass(frozen=True)
class Post:
    """A post in wire form, cut where each recipient's unsubscribe URL goes."""

    pk: int
    message_id: str
    info: ListInfo
    head: bytes
    tail: bytes
    eight_bit: bool

    def copy_for(self, unsubscribe_url: str) -> bytes:
        """One recipient's copy, in wire form (CRLF, dot-stuffed)."""
        return self.head + unsubscribe_url.encode("ascii", "replace") + self.tail


def load_post(ctx: WorkerContext, message_pk: int) -> Post | None:
    """Render the post once with a placeholder link (headers, DMARC, CRLF, dots); None if gone."""
    with (
        ctx.db() as session
    ):  # read, then render after the session ends (it may hold SQLite's write lock)
        msg = session.get(Message, message_pk)
        if msg is None:
            return None
        mlist = session.get_one(MailingList, msg.list_id)
        raw, dmarc_mode, reply_to = msg.raw.data, mlist.dmarc_mode, mlist.reply_to
    info = ListInfo(mlist.name, mlist.title, ctx.settings.domain, ctx.settings.base_url)
    # may ask DNS: outside the session too
    dmarc = ctx.dmarc.needs_rewrite(msg.from_addr, dmarc_mode)
    # The placeholder sits inside a header line (never at a line start, no line break in a
    # URL), so cutting the wire form there equals rendering each copy from scratch.
    mark = f"urn:x-listgate:{secrets.token_hex(16)}"
    # Lines over 998 bytes, which a standard relay refuses, are re-encoded in the copy (the
    # mark's short header line never is); the archive keeps the bytes as received.
    copy = fit_lines(
        build_copy(
            raw,
            info,
            msg.message_id,
            mark,
            dmarc=dmarc,
            author_name=msg.from_name,
            author_addr=msg.from_addr,
            reply_to=reply_to,
        )
    )
    wire = wire_form(ctx.signer.seal(copy, raw))  # ARC: once per post, List-Unsubscribe left out
    head, found, tail = wire.partition(mark.encode())
    if not found:
        raise RuntimeError(
            f"message {message_pk}: the unsubscribe link is missing from the rendered copy"
        )
    return Post(message_pk, msg.message_id, info, head, tail, not wire.isascii())
