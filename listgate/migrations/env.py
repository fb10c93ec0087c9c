"""Alembic environment: the URL comes from the caller's Settings, never from alembic.ini."""

from alembic import context

import listgate.models  # noqa: F401 - registers every table on Base.metadata
from listgate.db import Base
from listgate.models.search import managed_here

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run against the connection handed over by listgate.schema.upgrade()."""
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_object=managed_here,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
