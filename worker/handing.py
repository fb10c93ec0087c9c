"""The write transaction around the final dots, one for every kind of mail the worker sends
(a post's copies, digests, notices), and the recovery of the claims a stopped worker left: what
makes each go out once (docs/worker.md, "Exactly once").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, update
from sqlalchemy.orm import Session

from listgate import store
from listgate.db import rowcount
from listgate.models import Delivery, DigestSent
from listgate.states import DeliveryState, DigestState
from worker.relay_sessions import SendDots

log = logging.getLogger(__name__)


def around_dots(
    writer: Engine,
    send_dots: SendDots,
    take: Callable[[Connection], set[int]],
    give_back: Callable[[Connection, set[int]], None],
) -> set[int]:
    """The indexes whose final dot went out, in one write transaction: take(conn) marks the mails
    this worker still holds as handed over and names their indexes (the others are dropped before
    their dot: the relay discards them); give_back(conn, indexes) undoes that for those whose
    connection failed before the dot (not with the relay).

    The row locks are taken before the dots and the commit follows them at once, so a crash
    between the two (a mail sent twice) spans only the COMMIT call itself. That call does not
    wait for a disk flush (SQLite WAL with synchronous=NORMAL; PostgreSQL with synchronous_commit
    off for this transaction), so the window is a few writes long; a database crash that loses
    such a commit leaves the mails claimed again: a second copy, never a lost one.
    """
    with writer.begin() as conn:
        store.of(conn).relax_commit(conn)
        ours = take(conn)
        dotted = send_dots(ours)
        if ours - dotted:
            give_back(conn, ours - dotted)
    return dotted


def recover_stale(
    session: Session,
    claims: type[Delivery] | type[DigestSent],
    states: type[DeliveryState] | type[DigestState],
    now: datetime,
    stale_after: float,
    **again: Any,
) -> list[int]:
    """In session, settle the claims on `claims` held longer than stale_after at `now` (their
    worker stopped): a `handing` row had its final dot sent, so it counts as sent; a `sending`
    row never had, so it takes the values `again`, to be sent again. The ids sent again."""
    cutoff = now - timedelta(seconds=stale_after)
    assumed = rowcount(
        session.execute(
            update(claims)
            .where(claims.status == states.HANDING, claims.claimed_at <= cutoff)
            .values(
                status=states.SENT,
                sent_at=now,
                last_error="assumed sent: worker stopped after handing over",
            )
        )
    )
    ids = session.scalars(
        update(claims)
        .where(claims.status == states.SENDING, claims.claimed_at <= cutoff)
        .values(**again)
        .returning(claims.id)
    ).all()
    if assumed or ids:
        log.warning(
            "recovered stale claims on %s: %d assumed sent, %d to send again",
            claims.__tablename__,
            assumed,
            len(ids),
        )
    return list(ids)
