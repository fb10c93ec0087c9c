"""One engine, opened while its SQLite file is read-only, writes at once when the file is writable.

The process-level cause behind the read-only fault tests, without SMTP: a connection discarded
after "attempt to write a readonly database" must really close. Its failed statement's cursor
is kept alive by the traceback; left open, it kept the closed connection open underneath, and
with it the read-only WAL index every later connection of the process shared, until the
garbage collector happened to run (minutes, in a busy gateway). The garbage collector is off
in the process under test, so the test does not depend on when it would run.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.config import ROOT
from tests.support.readonly import chmod_databases, unprivileged

pytestmark = [pytest.mark.integration]

SCRIPT = """
import gc, sys
from pathlib import Path
from sqlalchemy import text
from listgate.db import sqlite_engine, writer
from tests.support.readonly import chmod_databases

gc.disable()
path = Path(sys.argv[1])
engine = writer(sqlite_engine(f"sqlite:///{path}"))

def write():
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        return "stored"
    except Exception as exc:
        return "readonly" if "readonly" in str(exc) else repr(exc)

codes = [write() for _ in range(3)]
chmod_databases(path.parent, 0o644)
codes += [write() for _ in range(3)]
print(" ".join(codes))
"""


def test_an_engine_first_used_while_read_only_writes_once_the_file_is_writable(
    shared_dir: Path,
) -> None:
    path = shared_dir / "listgate.sqlite3"
    keeper = sqlite3.connect(path)  # another process has the file open: -wal and -shm exist
    try:
        keeper.execute("PRAGMA journal_mode=WAL")
        keeper.execute("CREATE TABLE t (x INTEGER)")
        keeper.commit()
        keeper.execute("SELECT count(*) FROM t").fetchone()
        chmod_databases(shared_dir, 0o444)
        done = subprocess.run(
            [*unprivileged(), sys.executable, "-c", SCRIPT, str(path)],
            check=False,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        chmod_databases(shared_dir, 0o644)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == ["readonly"] * 3 + ["stored"] * 3, done.stdout
        assert keeper.execute("SELECT count(*) FROM t").fetchone() == (3,)
    finally:
        chmod_databases(shared_dir, 0o644)
        keeper.close()
