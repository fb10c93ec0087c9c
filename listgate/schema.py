"""Database migrations (Alembic), run by `listgate db upgrade` and `listgate up`.

Whether a database is current is read without Alembic (a third of a second to import): the
version table by SQL, the newest revision from the migrations' file names, each named by its
revision (tests/unit/listgate/test_schema.py holds Alembic to the same answer).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
VERSIONS = MIGRATIONS / "versions"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (creating it if needed)."""
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head() -> str:
    """The newest revision shipped with this code: NNNN of the highest versions/NNNN_*.py."""
    return max(p.name[:4] for p in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def needs_upgrade(engine: Engine) -> bool:
    """True when the database is behind the code."""
    return current(engine) != head()


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match the models ([] when they agree).

    The same comparison as `alembic check`, with the search objects the models describe as DDL
    (listgate/models/search.py) left out, as the migrations' environment leaves them out.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from listgate.db import Base
    from listgate.models.search import managed_here

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": managed_here}
        )
        return list(compare_metadata(context, Base.metadata))
