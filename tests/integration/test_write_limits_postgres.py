"""Limits on what people write, on PostgreSQL: a VARCHAR(n) holds n characters of any size, so a
value at the limit is stored whole and one over it is refused by the app (a 400 or a CLI error),
never by the database (a 500 or a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.listgate.test_cli_limits import cli_env, cli_journey
from tests.unit.webarchive.test_write_limits import JOURNEYS, web

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("journey", JOURNEYS, ids=lambda j: j.__name__)
def test_web_limits_on_postgres(pg_web: Any, journey: Callable[..., None]) -> None:
    app, factory = pg_web
    journey(web(app), factory)


def test_cli_limits_on_postgres(tmp_path: Path, postgres_db: str, pg_db: Any) -> None:
    cli_journey(cli_env(tmp_path, LISTGATE_DATABASE_URL=postgres_db), pg_db)
