"""ids never given again: AUTOINCREMENT on SQLite for the tables whose ids appear in URLs

Revision ID: 0019
Revises: 0018

/messages/N, /threads/N, /lists/NAME/authors/N and /attachments/N name rows by id. Without
AUTOINCREMENT, SQLite gives a new row the largest id plus one, so once a list is deleted with
its archive the ids of its newest posts, threads and attachments are given again, and an old link
(a moderator's mail, a bookmark) shows another list's post. PostgreSQL's sequences never go back:
nothing is done there.

SQLite cannot add AUTOINCREMENT to a table: each table is made again from its own CREATE TABLE
with the id declared INTEGER PRIMARY KEY AUTOINCREMENT, and its rows copied back with their ids
through a temporary table. Foreign keys stay on (they cannot be turned off in the migration's
transaction) and are checked at the commit (defer_foreign_keys): the rows of other tables naming
a row find it again once it is copied back, and a message may name a parent copied after it.
The indexes and triggers (the search index's) are made again from their own SQL; the search
index (FTS5, external content) keeps its rowids, which are the same ids.
"""

import re

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLES = ("threads", "messages", "attachments")
_PLAIN = re.compile(r"\bid INTEGER NOT NULL,")
_AUTO = "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,"


def upgrade() -> None:
    _remake(autoincrement=True)


def downgrade() -> None:
    _remake(autoincrement=False)


def _remake(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("PRAGMA defer_foreign_keys=ON")  # until the commit (SQLite resets it)
    # Dropping a table and copying it back looks up, row by row, the rows naming it: through an
    # index, or by reading the whole naming table each time (thread_nodes.message_pk had none:
    # 200 CPU-seconds on a 17,885-post archive). Indexes for the look-ups, for the migration only.
    helpers = _lookup_indexes()
    for name in TABLES:
        _remake_table(name, autoincrement)
    for index in helpers:
        bind.exec_driver_sql(f'DROP INDEX "{index}"')


def _lookup_indexes() -> list[str]:
    """An index on every column naming a row of TABLES that no index starts with; their names."""
    bind = op.get_bind()
    made = []
    tables = bind.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").all()
    for (table,) in tables:
        columns = bind.exec_driver_sql(f'PRAGMA table_info("{table}")').all()
        led = {row[1] for row in columns if row[5] == 1}  # the primary key's first column
        for index in bind.exec_driver_sql(f'PRAGMA index_list("{table}")').all():
            first = bind.exec_driver_sql(f'PRAGMA index_info("{index[1]}")').first()
            if first is not None:
                led.add(first[2])
        for fk in bind.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")').all():
            column = fk[3]
            if fk[2] in TABLES and column not in led:
                name = f"ix_0019_{table}_{column}"
                bind.exec_driver_sql(f'CREATE INDEX "{name}" ON "{table}" ("{column}")')
                led.add(column)
                made.append(name)
    return made


def _remake_table(name: str, autoincrement: bool) -> None:
    bind = op.get_bind()
    create = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).scalar_one()
    # its indexes and triggers, as made: they go with the table and are made again
    indexes, triggers = (
        [
            sql
            for (sql,) in bind.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = ? AND tbl_name = ? "
                "AND sql IS NOT NULL ORDER BY name",
                (kind, name),
            )
        ]
        for kind in ("index", "trigger")
    )
    pk = re.compile(rf",\s*CONSTRAINT pk_{name} PRIMARY KEY \(id\)")
    if autoincrement:
        assert _PLAIN.search(create) and pk.search(create), create
        create = pk.sub("", _PLAIN.sub(_AUTO, create, count=1), count=1)
    else:
        assert _AUTO in create, create
        create = create.replace(_AUTO, "id INTEGER NOT NULL,", 1).rstrip().removesuffix(")")
        create = create.rstrip() + f",\n\tCONSTRAINT pk_{name} PRIMARY KEY (id)\n)"
    columns = ", ".join(
        f'"{row[1]}"' for row in bind.exec_driver_sql(f'PRAGMA table_info("{name}")')
    )
    held = f"{name}_0019_rows"
    bind.exec_driver_sql(f'CREATE TEMP TABLE "{held}" AS SELECT {columns} FROM "{name}"')
    # its triggers are dropped before the implicit DELETE of the DROP: the search index stays;
    # the other tables' rows naming it wait for the copy (deferred foreign keys)
    bind.exec_driver_sql(f'DROP TABLE "{name}"')
    bind.exec_driver_sql(create)
    # indexes first: each row copied back looks up the rows naming it (messages.parent_id among
    # them, without its index a read of the whole table per row); triggers after: the copy must
    # not add the posts to the search index a second time
    for sql in indexes:
        bind.exec_driver_sql(sql)
    bind.exec_driver_sql(f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM temp."{held}"')
    bind.exec_driver_sql(f'DROP TABLE temp."{held}"')
    for sql in triggers:
        bind.exec_driver_sql(sql)
