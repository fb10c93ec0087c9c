"""The database turns read-only for a while: 451 meanwhile, then every post gets 250 again.

Connections opened during the read-only period are read-only for good (SQLite falls back to
read-only when it cannot open the file for writing; a PostgreSQL session keeps the
default_transaction_read_only it started with, like a session on a hot standby). If the pool
keeps them, some posts get 451 long after the database came back. Here RCPT probes from other
clients make the gateway open new connections during the period, then every later post must
get 250 at the first try and be stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.config import prepare, site_env
from tests.support.gateway import archived_ids
from tests.support.processes import gateway
from tests.support.readonly import chmod_databases, probes, unprivileged
from tests.support.reliability import Mta, post, post_code, record, run_mtas, size
from tests.support.services import _admin

pytestmark = [pytest.mark.integration, pytest.mark.soak]
UNLIMITED = "1000000"  # messages per minute per client: the posts here all come from 127.0.0.1


def _read_only_period(
    port: int,
    seconds: float,
    read_only: Callable[[], None],
    writable: Callable[[], None],
    during: list[str],
) -> tuple[list[Mta], float]:
    """Posts from 4 sending servers and RCPT probes from 12 connections while read-only.

    Returns the sending servers (done) and how long after the database was writable again they had
    every post accepted.
    """
    mtas = [Mta(port, [(m, post(m)) for m in during[i::4]], retry_delay=0.3) for i in range(4)]
    stop = threading.Event()
    readers = probes(port, stop)
    read_only()
    try:
        senders = run_mtas(mtas, time.monotonic() + seconds + 120)
        for t in readers:
            t.start()
        time.sleep(seconds)
    finally:
        writable()
        back = time.monotonic()
        stop.set()
    for t in readers + senders:
        t.join(150)
    return mtas, time.monotonic() - back


def _after(port: int, count: int) -> dict[str, int]:
    """Posts sent once the database is writable again, one at a time and from 4 clients at once."""
    ids = [f"after{i}@example.org" for i in range(count)]
    codes: dict[str, int] = {m: post_code(port, m) for m in ids[: count // 2]}

    def send(chunk: list[str]) -> None:
        for m in chunk:
            codes[m] = post_code(port, m)

    rest = ids[count // 2 :]
    threads = [threading.Thread(target=send, args=(rest[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return codes


def _check(
    db: sessionmaker[Session],
    mtas: list[Mta],
    codes: dict[str, int],
    scenario: str,
    recovery: float,
) -> None:
    stored = archived_ids(db)
    refused_after = {m: c for m, c in codes.items() if c != 250}
    queued = [m for mta in mtas for m, _ in mta.queue]
    accepted = [m for mta in mtas for m in mta.accepted]
    tempfails = sum(
        1 for mta in mtas for codes_ in mta.replies.values() for c in codes_ if 400 <= c < 500
    )
    lost = len(set(accepted + [m for m, c in codes.items() if c == 250]) - set(stored))
    record(
        scenario,
        len(queued) + len(codes),
        lost,
        len(stored) - len(set(stored)),
        recovery,
        f"{tempfails} x 451 while read-only; afterwards "
        f"{len(codes) - len(refused_after)}/{len(codes)} posts got 250 at the first try",
    )
    assert not refused_after, (
        f"posts refused after the database was writable again: {refused_after}"
    )
    assert sorted(accepted) == sorted(queued), (
        "a sending server could not deliver its queue after the period"
    )
    assert not any(mta.refused for mta in mtas), [mta.refused for mta in mtas]
    assert lost == 0 and len(stored) == len(set(stored)) == len(queued) + len(codes) + 1


def test_sqlite_files_read_only_for_a_while_then_every_post_is_stored(
    tmp_path: Path, shared_dir: Path
) -> None:
    seconds = size(3, 30)
    env = site_env(
        tmp_path,
        LISTGATE_DATA_DIR=str(shared_dir / "var"),
        LISTGATE_MAX_MESSAGES_PER_MINUTE=UNLIMITED,
    )
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log", prefix=unprivileged()).start()
    port = settings.smtp_port

    def chmod(mode: int) -> None:
        chmod_databases(shared_dir / "var", mode)

    try:
        assert post_code(port, "before@example.org") == 250
        files = sorted(p.name for p in (shared_dir / "var").glob("listgate*.sqlite3"))
        assert files == ["listgate.spool.sqlite3", "listgate.sqlite3"], files
        during = [f"during{i}@example.org" for i in range(size(20, 200))]
        mtas, recovery = _read_only_period(
            port, seconds, lambda: chmod(0o444), lambda: chmod(0o644), during
        )
        codes = _after(port, size(40, 400))
    finally:
        gw.stop()
    assert "readonly database" in gw.text(), (
        "the database never refused a write: the test did not test anything"
    )
    _check(db, mtas, codes, f"SQLite files read-only {seconds}s", recovery)


def test_postgres_read_only_for_a_while_then_every_post_is_stored(
    tmp_path: Path, postgres_url: str, postgres_db: str
) -> None:
    seconds = size(3, 30)
    env = site_env(
        tmp_path, LISTGATE_DATABASE_URL=postgres_db, LISTGATE_MAX_MESSAGES_PER_MINUTE=UNLIMITED
    )
    settings, db = prepare(env, "dev")
    name = urlsplit(postgres_db).path.lstrip("/")
    gw = gateway(env, tmp_path / "gateway.log").start()
    port = settings.smtp_port

    def read_only(on: bool) -> None:
        setting = (
            "SET default_transaction_read_only = on"
            if on
            else "RESET default_transaction_read_only"
        )
        _admin(postgres_url, f"ALTER DATABASE {name} {setting}")

    try:
        assert post_code(port, "before@example.org") == 250
        during = [f"during{i}@example.org" for i in range(size(20, 200))]
        mtas, recovery = _read_only_period(
            port, seconds, lambda: read_only(True), lambda: read_only(False), during
        )
        codes = _after(port, size(40, 400))
    finally:
        gw.stop()
        read_only(False)
    assert "read-only transaction" in gw.text(), (
        "the database never refused a write: the test did not test anything"
    )
    _check(db, mtas, codes, f"PostgreSQL default_transaction_read_only {seconds}s", recovery)
