"""Servers a benchmark needs: a throwaway PostgreSQL, Redis, a counting SMTP sink, a bare server."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import sys
import threading
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
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        if durable:
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')  # type: ignore[arg-type]
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
    from aiosmtpd.controller import Controller

    class Bare:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 2.0.0 OK"

    controller = Controller(
        Bare(), hostname="127.0.0.1", port=port, data_size_limit=64 * 1024 * 1024
    )
    controller.start()
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "bare":
        asyncio.set_event_loop(asyncio.new_event_loop())
        _bare_main(int(sys.argv[2]))
