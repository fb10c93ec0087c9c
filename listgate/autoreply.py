"""RFC 3834's rate rule: at most one automatic reply per sender per window.

Anything we send because a mail arrived (a confirmation asked for by mail, a command's answer,
a "held for moderation" notice) goes to an address nobody has authenticated: the From or the
envelope sender can be a victim's. So each such address gets at most one reply per
LISTGATE_AUTO_REPLY_WINDOW seconds, whatever the number of lists, commands or recipients in
the mail. Replies to a mail that proved its sender (a valid confirm-CODE) are not limited.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from listgate import store
from listgate.models import AutoReply


def claim(session: Session, address: str, window: int) -> bool:
    """True, and remembered, when address has had no automatic reply in the last `window` seconds.

    One upsert: concurrent workers racing for the same address let exactly one through.
    """
    if window <= 0:
        return True
    now = datetime.now(UTC)
    stmt = store.of(session).insert(AutoReply).values(address=address.lower()[:320], sent_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[AutoReply.address],
        set_={"sent_at": now},
        where=AutoReply.sent_at <= now - timedelta(seconds=window),
    )
    return session.execute(stmt.returning(AutoReply.address)).first() is not None
