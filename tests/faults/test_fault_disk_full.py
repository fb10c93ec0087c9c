"""The data directory fills up: 451 and a log line, no corrupted store, and it recovers when space
returns.

The data directory is a size-limited tmpfs mount (we need root for that). Where mounting is not
allowed, the same behaviour is checked with SQLite's max_page_count on an in-process gateway.
"""

from __future__ import annotations

import logging
import os
import smtplib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from tests.support.config import prepare, site_env
from tests.support.gateway import archived_ids
from tests.support.mounts import tmpfs
from tests.support.processes import gateway
from tests.support.reliability import post, record
from tests.support.services import require

pytestmark = [pytest.mark.integration, pytest.mark.soak]
BIG = "x" * 76 + "\r\n"


def _send(port: int, msgid: str, lines: int) -> int:
    """The SMTP code a post of about `lines` 78-byte lines gets."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("ann@example.org", ["dev@lists.test"], post(msgid, body=BIG * lines))
        return 250
    except smtplib.SMTPRecipientsRefused as exc:
        return next(iter(exc.recipients.values()))[0]
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code


@pytest.fixture
def small_mount(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path | None]:
    """A 6 MB tmpfs at tmp_path/data (another size with indirect
    parametrization), or None when this sandbox cannot mount.
    """
    mnt = tmp_path / "data"
    with tmpfs(mnt, getattr(request, "param", "6m")) as refused:
        if refused:
            logging.getLogger(__name__).warning(
                "cannot mount a tmpfs (%s): simulating with max_page_count", refused
            )
            yield None
        else:
            yield mnt


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(
        filler, "wb", buffering=0
    ) as fh:  # unbuffered: a partly written chunk is not flushed again at close
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    return filler


def _integrity(path: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_disk_full_gives_451_and_recovers(tmp_path: Path, small_mount: Path | None) -> None:
    if small_mount is None:
        _simulated(tmp_path)
        return
    env = site_env(tmp_path, LISTGATE_DATA_DIR=str(small_mount / "var"))
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log").start()
    db_path = settings.database_url.split("///", 1)[1]
    try:
        assert _send(settings.smtp_port, "before@example.org", 10) == 250
        filler = _fill(small_mount)
        codes = {
            f"full{i}@example.org": _send(settings.smtp_port, f"full{i}@example.org", 3000)
            for i in range(3)
        }
        assert set(codes.values()) == {451}, codes
        assert "storage failed" in gw.text() and (
            "disk is full" in gw.text() or "No space" in gw.text()
        )
        assert _integrity(db_path) == "ok"
        os.unlink(filler)
        for msgid in codes:  # the sending server retries the same mail
            assert _send(settings.smtp_port, msgid, 3000) == 250
    finally:
        gw.stop()
    assert _integrity(db_path) == "ok"
    assert sorted(archived_ids(db)) == sorted(["before@example.org", *codes])
    record(
        "disk full (6 MB tmpfs)",
        len(codes) + 1,
        0,
        0,
        None,
        "451 while full, accepted after space returned",
    )


def _simulated(tmp_path: Path) -> None:
    """No mount allowed: cap the SQLite file with max_page_count on an in-process gateway."""
    from listgate.db import make_engine, session_factory, writer
    from tests.support.gateway import start_gateway

    settings, _ = prepare(site_env(tmp_path), "dev")
    engine = make_engine(settings)
    cap = {"pages": 0}

    @event.listens_for(engine, "connect")
    def _limit(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        if cap["pages"]:
            dbapi_conn.execute(f"PRAGMA max_page_count = {cap['pages']}")

    db = session_factory(writer(engine))
    gw = start_gateway(settings, db)
    try:
        assert _send(settings.smtp_port, "before@example.org", 10) == 250
        engine.dispose()
        with sqlite3.connect(settings.database_url.split("///", 1)[1]) as conn:
            cap["pages"] = conn.execute("PRAGMA page_count").fetchone()[0] + 2
        assert _send(settings.smtp_port, "full@example.org", 3000) == 451
        cap["pages"] = 0
        engine.dispose()
        assert _send(settings.smtp_port, "full@example.org", 3000) == 250
    finally:
        gw.stop()
        engine.dispose()
    assert _integrity(settings.database_url.split("///", 1)[1]) == "ok"
    assert sorted(archived_ids(db)) == ["before@example.org", "full@example.org"]


def _room(mount: Path) -> str:
    """Free space on the mount and the size of each file in it, for a failure's message."""
    st = os.statvfs(mount)
    files = sorted(
        (p.stat().st_size, str(p.relative_to(mount))) for p in mount.rglob("*") if p.is_file()
    )
    return f"{st.f_bavail * st.f_frsize // 1024} KB free; files: " + ", ".join(
        f"{name} {size // 1024} KB" for size, name in reversed(files)
    )


@pytest.mark.parametrize("small_mount", ["24m"], indirect=True)
def test_a_full_disk_under_four_clients_gives_no_250_without_a_row(
    tmp_path: Path, small_mount: Path | None
) -> None:
    """Issue 17's run: 4 clients send 51 KB posts into a
    small data dir until it is full; count 250s against rows.
    """
    if small_mount is None:
        require(
            "tmpfs",
            "cannot mount one here (locally, the injected faults of "
            "test_fault_spool_batch.py cover this)",
        )
    import threading

    env = site_env(
        tmp_path,
        LISTGATE_DATA_DIR=str(small_mount / "var"),
        LISTGATE_MAX_MESSAGES_PER_MINUTE="100000",
    )
    settings, db = prepare(env, "dev")
    reserve = small_mount / "reserve"
    # freed at the end: the space an operator makes (the WALs need room to checkpoint)
    reserve.write_bytes(b"\0" * 12_000_000)
    gw = gateway(env, tmp_path / "gateway.log").start()
    codes: dict[str, int] = {}

    def client(k: int) -> None:
        refused = 0
        for i in range(400):
            msgid = f"c{k}-{i}@example.org"
            codes[msgid] = _send(settings.smtp_port, msgid, 650)  # ~51 KB
            refused += codes[msgid] != 250
            if refused >= 15:
                return

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        accepted = sorted(m for m, c in codes.items() if c == 250)
        refused = sorted(m for m, c in codes.items() if c != 250)
        os.unlink(reserve)
        try:
            stored = archived_ids(db)  # waits until the archiver has taken everything spooled
        except AssertionError as exc:  # say where the room went
            raise AssertionError(f"{exc}; {_room(small_mount)}") from None
    finally:
        gw.stop()
    lost = sorted(set(accepted) - set(stored))
    record(
        "disk full, 4 clients, 51 KB posts (24 MB tmpfs)",
        len(codes),
        len(lost),
        len(stored) - len(set(stored)),
        note=f"{len(accepted)} x 250, {len(refused)} x 4xx",
    )
    assert refused and {codes[m] for m in refused} <= {451, 452}, {codes[m] for m in refused}
    assert lost == [], f"{len(lost)} posts answered 250 are not in the archive: {lost[:5]}"
    assert len(stored) == len(set(stored))
    assert _integrity(settings.database_url.split("///", 1)[1]) == "ok"
