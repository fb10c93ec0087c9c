"""The `listgate` command as the tests run it in-process: its environment, the migrated site
beside it, and click's runner (an exception the command does not handle fails the test)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy.orm import Session, sessionmaker

from listgate import cli
from listgate.config import Settings
from listgate.db import make_engine, session_factory, writer
from listgate.schema import upgrade
from tests.support.config import make_settings


def command_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The LISTGATE_* variables of a site in tmp_path (extra: more of them)."""
    return {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
        **extra,
    }


def migrated_site(tmp_path: Path, env: dict[str, str]) -> tuple[sessionmaker[Session], Settings]:
    """The site's database, migrated, and its settings: what the commands run on."""
    settings = make_settings(tmp_path, **env)
    engine = make_engine(settings)
    upgrade(engine)
    return session_factory(writer(engine)), settings


def run(env: dict[str, str], *args: str) -> Result:
    """`listgate ARGS` in this process with env."""
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)
