"""Whether a database is current, read without Alembic, is what Alembic itself says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from listgate.schema import VERSIONS, alembic_config, current, head, needs_upgrade, upgrade


def test_each_migration_file_is_named_by_its_revision_in_one_line_of_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    files = sorted(VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert len(files) == len(list(VERSIONS.glob("*.py"))), "a migration not named NNNN_*.py"
    for before, path in zip([None, *files], files, strict=False):
        rev = script.get_revision(path.name[:4])
        assert rev is not None and Path(rev.path).name == path.name, path.name
        assert rev.down_revision == (before.name[:4] if before else None), path.name
    assert head() == script.get_current_head() == files[-1].name[:4]


def test_the_database_revision_reads_as_alembic_reads_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        assert current(engine) is None and needs_upgrade(engine)  # empty: no version table
        upgrade(engine, "0018")
        with engine.connect() as conn:
            assert current(engine) == MigrationContext.configure(conn).get_current_revision()
        assert current(engine) == "0018" and needs_upgrade(engine)
        upgrade(engine)
        assert current(engine) == head() and not needs_upgrade(engine)
        with engine.begin() as conn:  # a database the code does not know (newer code ran)
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        assert needs_upgrade(engine)
    finally:
        engine.dispose()


def test_a_command_on_a_current_database_does_not_load_alembic(tmp_path: Path) -> None:
    """Every command that opens the database asks whether it is current: that is cheap."""
    code = (
        "import sys\n"
        "from sqlalchemy import create_engine\n"
        "from listgate.schema import needs_upgrade, upgrade\n"
        f"engine = create_engine('sqlite:///{tmp_path / 'db.sqlite3'}')\n"
        "upgrade(engine)\n"
        "for name in [m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')]:\n"
        "    del sys.modules[name]\n"
        "assert not needs_upgrade(engine)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert re.fullmatch(r"\[\]\n", out), out
