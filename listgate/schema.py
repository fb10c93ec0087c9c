"""Database migrations (Alembic), run by `listgate db upgrade` and `listgate up`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (creating it if needed)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def needs_upgrade(engine: Engine) -> bool:
    """True when the database is behind the code."""
    return current(engine) != head()


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match the models ([] when they agree).

    The same comparison as `alembic check`, with the search objects the models describe as DDL
    (listgate/models/search.py) left out, as the migrations' environment leaves them out.
    """
    from listgate.db import Base
    from listgate.models.search import managed_here

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": managed_here}
        )
        return list(compare_metadata(context, Base.metadata))
