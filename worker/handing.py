"""The write transaction around the final dots, one for every kind of mail the worker sends
(a post's copies, digests, notices): what makes each go out once (docs/worker.md, "Exactly once").
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine

from listgate import store
from worker.relay_sessions import SendDots


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
