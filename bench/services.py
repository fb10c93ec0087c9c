"""Servers a benchmark needs: a throwaway PostgreSQL, Redis, a counting SMTP sink, a bare server."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from bench.common import PYTHON, Context, NotAvailable, Proc, free_port, wait_port

PG_DIRS = [
    Path("/usr/lib/postgresql/15/bin"),
    *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
]


def pg_bin(name: str) -> Path | None:
    """A PostgreSQL server binary (initdb, pg_ctl, postgres), or None."""
    for d in PG_DIRS:
        if (d / name).exists():
            return d / name
    return None


def postgres(ctx: Context, durable: bool = False) -> str:
    """A throwaway PostgreSQL cluster for this run (shared); returns a URL for a fresh database.

    durable: its commits wait for the WAL flush (synchronous_commit=on, PostgreSQL's default), as
    the spool's commit before a 250 must (on SQLite the spool file is at synchronous=FULL).
    """
    admin = ctx.once("postgres", lambda: _start_postgres(ctx))
    name = f"bench{len([k for k in ctx.memo if k.startswith('pgdb:')]) + 1}"
    ctx.memo[f"pgdb:{name}"] = True
    import psycopg

    with psycopg.connect(str(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        if durable:
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    return str(admin).rsplit("/", 1)[0] + "/" + name


def _start_postgres(ctx: Context) -> str:
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise NotAvailable("PostgreSQL server binaries not installed (apt-get install postgresql)")
    base = ctx.path("postgres", "x").parent
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise NotAvailable(
                "running as root and there is no 'postgres' user for initdb"
            ) from None
        os.chown(base, pw.pw_uid, pw.pw_gid)
        # the run's work dir is a private temp dir: the server's own user must pass through it
        ctx.workdir.chmod(ctx.workdir.stat().st_mode | 0o011)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run(
            [*prefix, *cmd], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise NotAvailable(
                f"{Path(cmd[0]).name} failed: {(done.stderr or done.stdout).strip()[-200:]}"
            )

    run(str(initdb), "-D", str(data), "-U", "bench", "--auth=trust", "-E", "UTF8")
    # synchronous_commit=off matches the embedded default (SQLite WAL, synchronous=NORMAL):
    # a crash may lose the last moments, never corrupts. fsync stays on.
    opts = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c synchronous_commit=off "
        "-c max_connections=200"
    )
    run(
        str(pg_ctl), "-D", str(data), "-l", str(base / "log"), "-o", opts, "-w", "-t", "60", "start"
    )
    ctx.stack.callback(
        lambda: subprocess.run(
            [*prefix, str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    )
    return f"postgresql://bench@127.0.0.1:{port}/postgres"


def redis(ctx: Context) -> str:
    """A throwaway redis-server for this run (shared); returns its URL."""
    return str(ctx.once("redis", lambda: _start_redis(ctx)))


def redis_url_db(ctx: Context, db: int) -> str:
    """The run's Redis with a given database number (separate brokers per case)."""
    return redis(ctx).rsplit("/", 1)[0] + f"/{db}"


def _start_redis(ctx: Context) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise NotAvailable("redis-server not installed (apt-get install redis-server)")
    port = free_port()
    proc = ctx.start(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            "64",
        ],
    )
    wait_port("127.0.0.1", port, 20, proc.popen)
    return f"redis://127.0.0.1:{port}/0"


class CountingSink:
    """The fan-out's relay: a minimal counting SMTP receiver in this process (bench/sink.py)."""

    def __init__(self) -> None:
        from bench.sink import Sink

        self.port = free_port()
        self.sink = Sink(self.port)

    @property
    def url(self) -> str:
        """LISTGATE_OUTBOUND for this sink."""
        return f"smtp://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget what was counted."""
        tally = self.sink.tally
        with tally.lock:
            tally.count = tally.recipients = 0
            tally.first = tally.last = 0.0

    def snapshot(self) -> tuple[int, int, float]:
        """(messages, recipients, time of the last one)."""
        tally = self.sink.tally
        with tally.lock:
            return tally.count, tally.recipients, tally.last

    def __enter__(self) -> CountingSink:
        self.sink.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sink.stop()


def start_bare_smtpd(ctx: Context, name: str = "bare-aiosmtpd") -> tuple[Proc, int]:
    """The ceiling: aiosmtpd in its own process whose handler stores nothing and answers 250."""
    port = free_port()
    proc = ctx.start(name, [PYTHON, "-m", "bench.services", "bare", str(port)])
    wait_port("127.0.0.1", port, 20, proc.popen)
    return proc, port


def _bare_main(port: int) -> None:
    """A bare aiosmtpd server, run as `python -m bench.services bare PORT`."""

    class Bare:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 2.0.0 OK"

    _serve(Bare(), port)


def _serve(handler: object, port: int) -> None:
    """Serve SMTP with handler on port until the process is stopped."""
    from aiosmtpd.controller import Controller

    controller = Controller(
        handler, hostname="127.0.0.1", port=port, data_size_limit=64 * 1024 * 1024
    )
    controller.start()
    try:
        threading.Event().wait()
    finally:
        controller.stop()


def start_floor_smtpd(ctx: Context, kind: str, target: str) -> tuple[Proc, int]:
    """The durable floor: aiosmtpd whose 250 waits for a group commit of the bytes, nothing else.

    kind is "sqlite" (target: a file, WAL at synchronous=FULL, as the spool file) or "postgresql"
    (target: a database URL whose commits wait for the WAL flush, as the spool table's). It is
    the least any server can do that answers 250 only once the bytes are durable: what ours does
    beyond it is the checks, the look-ups and the spool row's envelope and counts.
    """
    port = free_port()
    proc = ctx.start(
        f"floor-{kind}", [PYTHON, "-m", "bench.services", "floor", kind, target, str(port)]
    )
    wait_port("127.0.0.1", port, 20, proc.popen)
    return proc, port


_FLOOR_INSERT = "INSERT INTO floor (sender, rcpt, data) VALUES (?, ?, ?)"


def _floor_writer(kind: str, target: str) -> Callable[[list[tuple]], list[str]]:
    """write(batch of (from, to, bytes)): one transaction, committed durably, per batch."""
    if kind == "postgresql":
        import psycopg

        pg = psycopg.connect(
            target.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        )
        pg.execute(
            "CREATE TABLE floor (id bigserial PRIMARY KEY, sender text, rcpt text, data bytea)"
        )

        def write_pg(batch: list[tuple]) -> list[str]:
            with pg.transaction(), pg.cursor() as cur:
                cur.executemany(_FLOOR_INSERT.replace("?", "%s"), batch)
            return ["250 2.0.0 OK"] * len(batch)

        return write_pg
    import sqlite3

    lite = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
    lite.execute("PRAGMA journal_mode=WAL")
    lite.execute("PRAGMA synchronous=FULL")
    lite.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, sender TEXT, rcpt TEXT, data BLOB)")

    def write_sqlite(batch: list[tuple]) -> list[str]:
        lite.execute("BEGIN IMMEDIATE")
        try:
            lite.executemany(_FLOOR_INSERT, batch)
        except BaseException:
            lite.execute("ROLLBACK")
            raise
        lite.execute("COMMIT")
        return ["250 2.0.0 OK"] * len(batch)

    return write_sqlite


def _floor_main(kind: str, target: str, port: int) -> None:
    """`python -m bench.services floor KIND TARGET PORT`: the durable floor (start_floor_smtpd),
    with the gateway's own group writer."""
    from gateway.writer import GroupWriter

    writer: GroupWriter[tuple, str] = GroupWriter(_floor_writer(kind, target), name="floor")
    writer.start()

    class Floor:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            job = (envelope.mail_from, ",".join(envelope.rcpt_tos), envelope.original_content)
            return await writer.submit_waiting(job)

    try:
        _serve(Floor(), port)
    finally:
        writer.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "bare":
        asyncio.set_event_loop(asyncio.new_event_loop())
        _bare_main(int(sys.argv[2]))
    elif len(sys.argv) == 5 and sys.argv[1] == "floor":
        asyncio.set_event_loop(asyncio.new_event_loop())
        _floor_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
