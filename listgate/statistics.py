"""The planner's statistics after bulk writes: `listgate import` ends by gathering them (ANALYZE).

A table filled in bulk has no statistics until PostgreSQL's autovacuum gets to it, and SQLite
gathers none by itself. Until then the planners guess, and measured after an import they guessed
wrong: PostgreSQL's generic plan of the gateway's duplicate look-up walked every message of the
list instead of probing its Message-IDs, and SQLite joined a list's activity page's posts to their
threads by scanning the threads once per post (quadratic).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from listgate import models
from listgate.db import writer
from listgate.store import table

log = logging.getLogger(__name__)

# What archiving a message writes row by row (listgate.ingest, threads, conversations).
ARCHIVE = (
    models.Message,
    models.RawMessage,
    models.Thread,
    models.ThreadNode,
    models.MessageRef,
    models.ThreadParticipant,
    models.MessageVariant,
    models.Attachment,
    models.Blob,
)
ANNOUNCE = "updating the planner's statistics…"


def gather(engine: Engine, models: Iterable[type[Any]] = ARCHIVE) -> bool:
    """ANALYZE the tables of models, one transaction each; False after a WARNING naming what failed.

    A failure never undoes what was written: the tables keep their old statistics (autovacuum
    gathers PostgreSQL's later), so the caller reports it and carries on.
    """
    names = [table(model).name for model in models]
    quote = engine.dialect.identifier_preparer.quote
    started = time.monotonic()
    for done, name in enumerate(names):
        try:
            with writer(engine).begin() as conn:
                conn.exec_driver_sql(f"ANALYZE {quote(name)}")
        except SQLAlchemyError as exc:
            log.warning(
                "updating the planner's statistics failed: ANALYZE %s: %s (what was written is "
                "kept; not analyzed: %s)",
                name,
                _first_line(exc),
                ", ".join(names[done:]),
            )
            return False
    log.info(
        "gathered the planner's statistics of %d tables in %.1fs",
        len(names),
        time.monotonic() - started,
    )
    return True


def _first_line(exc: BaseException) -> str:
    """The database driver's own message, first line (not SQLAlchemy's wrapping)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
