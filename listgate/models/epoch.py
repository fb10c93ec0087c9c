"""The facts epoch: one row whose number changes whenever what the gateway decides a post by
changes (a list's DECIDING columns, a ban, a list or digest subscription).

The gateway's writer keeps those facts between batches (listgate.factcache) and spools a batch
decided from them only if the epoch still reads what it read with them, in the append's own
statement (listgate.spool.Spool.append_if). On PostgreSQL triggers bump the number, in the
transaction that changes a fact, so the epoch a snapshot reads and the facts it reads always go
together; the lists' counters, which the archiver writes every batch, and thread follows (the
subscriptions the archiver adds) do not bump it. On SQLite the table exists and nothing reads it:
the gateway there decides every batch from a look-up, as before.

The row and the triggers are DDL, not something a model declares: migration 0025 runs it, and
so does `Base.metadata.create_all` (its after_create event, once every table exists; each
statement may run again).
"""

from __future__ import annotations

from sqlalchemy import DDL, BigInteger, Integer, event
from sqlalchemy.orm import Mapped, mapped_column

from listgate.db import Base

EPOCH_TABLE = "facts_epoch"
BUMP = "listgate_bump_facts_epoch"
# (name, table, events, for each, when): each bumps the epoch once per statement or row it fires on
_M = "('list', 'digest')"  # listgate.states.SubscriptionKind: the kinds that make a member
# listgate.store.DECIDING but the id (tests/integration/test_migration_0025.py checks they agree)
DECIDING_COLUMNS = ("name", "policy", "private", "moderators", "owners")
_DECIDING = "(" + ", ".join(f"{{0}}.{c}" for c in DECIDING_COLUMNS) + ")"
_MEMBER = "({0}.list_id, {0}.address, {0}.kind, {0}.status)"  # what listgate.store.MEMBER reads
POSTGRES_TRIGGERS = (
    ("facts_epoch_lists", "lists", "INSERT OR DELETE OR TRUNCATE", "STATEMENT", ""),
    (
        "facts_epoch_lists_change",
        "lists",
        "UPDATE",
        "ROW",
        f"{_DECIDING.format('OLD')} IS DISTINCT FROM {_DECIDING.format('NEW')}",
    ),
    ("facts_epoch_bans", "bans", "INSERT OR UPDATE OR DELETE OR TRUNCATE", "STATEMENT", ""),
    ("facts_epoch_members_truncate", "subscriptions", "TRUNCATE", "STATEMENT", ""),
    ("facts_epoch_members_in", "subscriptions", "INSERT", "ROW", f"NEW.kind IN {_M}"),
    ("facts_epoch_members_out", "subscriptions", "DELETE", "ROW", f"OLD.kind IN {_M}"),
    (
        "facts_epoch_members_change",
        "subscriptions",
        "UPDATE",
        "ROW",
        f"(OLD.kind IN {_M} OR NEW.kind IN {_M})"
        f" AND {_MEMBER.format('OLD')} IS DISTINCT FROM {_MEMBER.format('NEW')}",
    ),
)
# The first number: the clock's microseconds, so that a row made again (a database emptied and
# filled) never reads a number a running gateway saw before.
FIRST = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

POSTGRES_UP = [
    f"INSERT INTO {EPOCH_TABLE} (id, epoch) VALUES (1, {FIRST}) ON CONFLICT DO NOTHING",
    f"""CREATE OR REPLACE FUNCTION {BUMP}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE {EPOCH_TABLE} SET epoch = epoch + 1 WHERE id = 1;
        RETURN NULL;
    END $$""",
    *(
        f"CREATE OR REPLACE TRIGGER {name} AFTER {events} ON {table} FOR EACH {each}"
        + (f" WHEN ({when})" if when else "")
        + f" EXECUTE FUNCTION {BUMP}()"
        for name, table, events, each, when in POSTGRES_TRIGGERS
    ),
]
SQLITE_UP = [f"INSERT OR IGNORE INTO {EPOCH_TABLE} (id, epoch) VALUES (1, 0)"]
POSTGRES_DOWN = [
    *(f"DROP TRIGGER IF EXISTS {name} ON {table}" for name, table, *_ in POSTGRES_TRIGGERS),
    f"DROP FUNCTION IF EXISTS {BUMP}()",
]
UP = {"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}
DOWN = {"sqlite": [], "postgresql": POSTGRES_DOWN}


class FactsEpoch(Base):
    """The one row (id 1): its epoch changes with every change of a fact the gateway decides by."""

    __tablename__ = EPOCH_TABLE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger)


for _dialect, _statements in UP.items():
    for _sql in _statements:
        event.listen(Base.metadata, "after_create", DDL(_sql).execute_if(dialect=_dialect))
