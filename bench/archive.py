"""A benchmark archive: a data dir, its settings and environment, a migrated database, a list."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from bench.common import DOMAIN, Context, NotAvailable, listgate_env

log = logging.getLogger(__name__)
LIST = "bench"


@dataclass
class Archive:
    """Where one benchmark's listgate keeps its data, and how its processes are configured."""

    data_dir: Path
    env: dict[str, str]
    list_name: str = LIST

    @property
    def address(self) -> str:
        """The list's posting address."""
        return f"{self.list_name}@{DOMAIN}"

    @property
    def settings(self):  # type: ignore[no-untyped-def]
        """listgate Settings for this archive."""
        from listgate.config import Settings

        return Settings.from_env(self.env)

    @property
    def smtp_port(self) -> int:
        """The gateway's port."""
        return int(self.env["LISTGATE_SMTP_LISTEN"].rsplit(":", 1)[1])

    @property
    def web_port(self) -> int:
        """The web archive's port."""
        return int(self.env["LISTGATE_WEB_LISTEN"].rsplit(":", 1)[1])

    def engine(self):  # type: ignore[no-untyped-def]
        """A SQLAlchemy engine on the archive's database."""
        from listgate.db import make_engine

        return make_engine(self.settings)

    def count(self, table: str = "messages") -> int:
        """Rows in a table (messages: the visible posts of every list)."""
        from sqlalchemy import text

        engine = self.engine()
        try:
            with engine.connect() as conn:
                where = " WHERE status = 'visible'" if table == "messages" else ""
                return int(conn.execute(text(f"SELECT count(*) FROM {table}{where}")).scalar_one())
        finally:
            engine.dispose()

    def db_bytes(self) -> int:
        """Bytes on disk of the embedded database (file, WAL), or PostgreSQL's database size."""
        settings = self.settings
        if settings.is_sqlite:
            path = Path(settings.database_url.split("///", 1)[1])
            self.checkpoint()
            return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        from sqlalchemy import text

        engine = self.engine()
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                )
        finally:
            engine.dispose()

    def checkpoint(self) -> None:
        """Fold SQLite's WAL into the database file, so sizes are honest."""
        from sqlalchemy import text

        engine = self.engine()
        try:
            with engine.connect() as conn, contextlib.suppress(Exception):
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        finally:
            engine.dispose()


def make_archive(
    ctx: Context, name: str, database_url: str = "", list_name: str = LIST, **env: str
) -> Archive:
    """A fresh data dir with a migrated database and one open list."""
    from listgate import lists
    from listgate.db import make_engine, session_factory, transaction, writer
    from listgate.schema import upgrade

    data_dir = ctx.path("archives", name, "x").parent
    extra = dict(env)
    if database_url:
        extra["LISTGATE_DATABASE_URL"] = database_url
    archive = Archive(data_dir, listgate_env(data_dir, **extra), list_name)
    engine = make_engine(archive.settings)
    try:
        upgrade(engine)
        with transaction(session_factory(writer(engine))) as session:
            if lists.get(session, list_name) is None:
                lists.create(session, list_name, "Benchmark list", "Posts made by make bench.")
    except Exception as exc:  # noqa: BLE001 - a broken migration is reported on the row
        raise NotAvailable(
            f"cannot create the archive database: {type(exc).__name__}: {exc}"[:300]
        ) from None
    finally:
        engine.dispose()
    return archive
