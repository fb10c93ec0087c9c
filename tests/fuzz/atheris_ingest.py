"""Coverage-guided fuzzing (atheris) of listgate.mail.parser.parse and listgate.ingest.ingest.

Run by `make soak`:  python -m tests.fuzz.atheris_ingest -atheris_runs=20000 [corpus dirs...]
With no corpus directory, it seeds itself from tests/data and, when LISTGATE_TEST_CORPORA names
them, the shared corpora (copied to a temp dir). Any exception is a crash: atheris stops and writes
the input that caused it. Every stored message must keep its raw bytes exactly.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import atheris

if TYPE_CHECKING:  # only for the annotations: sqlalchemy is imported instrumented, below
    from sqlalchemy.orm import Session, sessionmaker

with atheris.instrument_imports():
    from listgate import lists
    from listgate.config import Settings
    from listgate.db import make_engine, session_factory, transaction, writer
    from listgate.ingest import HELD_FOR_MODERATION, STORED, ingest
    from listgate.mail.parser import parse
    from listgate.models import Message
    from listgate.schema import upgrade

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass
class _State:
    """The archive the inputs go to, and the temp dirs to remove at the end."""

    db: sessionmaker[Session] | None = None
    dirs: list[Path] = field(default_factory=list)


STATE = _State()


def setup() -> None:
    """A throwaway migrated SQLite archive with one open list."""
    tmp = Path(tempfile.mkdtemp(prefix="listgate-atheris-"))
    STATE.dirs = [tmp]
    settings = Settings.from_env(
        {"LISTGATE_DATA_DIR": str(tmp), "LISTGATE_SECRET_KEY": "atheris-secret-0123456789"}
    )
    engine = make_engine(settings)
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as session:
        lists.create(session, "dev")
    STATE.db = db


def one_input(data: bytes) -> None:
    """Parse and ingest one input; stored bytes must equal the input."""
    parsed = parse(data)
    db = STATE.db
    assert db is not None, "setup() first"
    with transaction(db) as session:
        result = ingest(
            session, parsed, lists.require(session, "dev"), domain="lists.test", origin="import"
        )
    if result.status in (STORED, HELD_FOR_MODERATION):
        with db() as session:
            stored = session.get(Message, result.message_pk)
            if stored is None or stored.raw.data != data:
                raise AssertionError("a stored message lost its exact raw bytes")


def seed_dir() -> str:
    """A temp dir of seed inputs from the shared corpora."""
    out = Path(tempfile.mkdtemp(prefix="listgate-atheris-seeds-"))
    STATE.dirs.append(out)
    files = sorted((DATA / "mail").glob("*.eml")) + sorted((DATA / "bounces").glob("*.txt"))
    corpora = Path(os.environ.get("LISTGATE_TEST_CORPORA", "/nonexistent"))
    files += list((corpora / "hyperkitty-testdata").glob("*.txt")) + list(
        (corpora / "mailman-eml" / "eml").glob("*.eml")
    )
    files += sorted((corpora / "bounces" / "data").glob("*.txt"))[:30]
    for i, f in enumerate(p for p in files if p.name != "SOURCE.txt"):
        (out / f"seed{i}").write_bytes(re.sub(rb"\r?\n", b"\r\n", f.read_bytes()))
    return str(out)


def main() -> None:
    """Fuzz until -atheris_runs or a crash."""
    logging.disable(logging.CRITICAL)
    setup()
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(seed_dir())
    argv.append("-max_len=65536")
    atheris.Setup(argv, one_input)
    try:
        atheris.Fuzz()
    finally:
        for path in STATE.dirs:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
