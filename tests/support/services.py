"""Real services for the tests: PostgreSQL, Redis and Chromium.

Each comes from an environment variable when set (LISTGATE_TEST_DATABASE_URL,
LISTGATE_TEST_REDIS_URL, LISTGATE_TEST_CHROMIUM), otherwise a throwaway server is started
for the session from the Debian binaries. When a service cannot be had, `require` fails the
test under CI=true and skips it (with a one-line reason) everywhere else.

When the suite runs in several processes (pytest-xdist), each starts its own servers, on its own
free ports and in its own temp dirs; on a server given by its URL each process keeps to its own:
its own template database (template_db) and, on Redis, its own database number (worker_redis).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from listgate.config import Settings
from listgate.db import make_engine
from tests.support.config import free_port
from tests.support.reaper import register_server

PG_BIN = Path(os.environ.get("LISTGATE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
CHROMIUM = "/usr/bin/chromium"
TEMPLATE_DB = "listgate_template"
_db_counter = itertools.count(1)


def in_ci() -> bool:
    """True when the suite runs in CI, where a missing service is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(service: str, reason: str) -> NoReturn:
    """Fail (CI=true) or skip (locally) because `service` is not available."""
    message = f"{service} unavailable: {reason}"
    if in_ci():
        pytest.fail(
            f"{message} (CI=true: every service must be present, see .ci/run)", pytrace=False
        )
    pytest.skip(message)


def _wait_port(port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class PostgresServer:
    """A throwaway PostgreSQL 15 cluster in a temp dir (run as `postgres` when we are root)."""

    # Fast and unsafe on a crash of the server (synchronous_commit off forgets the last commits);
    # a test that crashes its server on purpose overrides this.
    options = (
        "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="listgate-pg-"))
        self.port = free_port()
        self.user: str | None = None

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        # start() reads the status and raises with PostgreSQL's own words; stop is best effort.
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> str:
        """Init and start the cluster; returns the admin URL, or raises RuntimeError saying why."""
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"{PG_BIN / 'initdb'} not found (apt-get install postgresql)")
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root and there is no 'postgres' user to run initdb"
                ) from None
            self.user = "postgres"
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = self.dir / "data"
        done = self._run(
            "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip().splitlines()[-1:]}")
        options = f"-p {self.port} -k {self.dir} {self.options}"
        done = self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.dir / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed: {(done.stderr or done.stdout).strip()[-300:]}"
            )
        # The postmaster's first line is its pid: stopped (and its files removed) with the run.
        register_server(int((data / "postmaster.pid").read_text().split()[0]), self.dir)
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop the cluster and delete its files."""
        if (self.dir / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A throwaway redis-server on a free port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start it; returns its URL, or raises RuntimeError saying why."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_port(self.port):
            self.stop()
            raise RuntimeError(f"redis-server did not listen on port {self.port}")
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def worker() -> str:
    """This test process's name among pytest-xdist's (gw0, gw1...); "" when the suite is one."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def template_db() -> str:
    """The name of this test process's migrated template database (each makes and drops its own)."""
    return f"{TEMPLATE_DB}_{worker()}" if worker() else TEMPLATE_DB


def worker_redis(url: str) -> str:
    """A given Redis URL for this test process: its database number plus the worker's number, so
    that one worker's flushdb (redis_db_url) empties none of the others'; a clear failure when
    there are more workers than the server's 16 databases.
    """
    name = worker()
    if not name.startswith("gw"):
        return url
    parts = urlsplit(url)
    number = int(parts.path.lstrip("/") or 0) + int(name[2:])
    if number > 15:
        require("Redis", f"{url}: no database {number} for test process {name} (16 databases)")
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, ""))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _admin(url: str, *statements: str) -> None:
    import psycopg

    conninfo = "postgresql://" + url.split("://", 1)[1]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def make_template(admin_url: str) -> None:
    """Create a migrated template database once, copied by every test's database."""
    from listgate.config import Settings
    from listgate.db import make_engine
    from listgate.schema import upgrade

    _admin(
        admin_url,
        f"DROP DATABASE IF EXISTS {template_db()} WITH (FORCE)",
        f"CREATE DATABASE {template_db()}",
    )
    env = {
        "LISTGATE_DATABASE_URL": with_database(admin_url, template_db()),
        "LISTGATE_SECRET_KEY": "template-secret-0123456789",
        "LISTGATE_DATA_DIR": tempfile.gettempdir(),
    }
    engine = make_engine(Settings.from_env(env))
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def new_database(admin_url: str, migrated: bool = True) -> str:
    """A fresh database on the server (a copy of the migrated template, or empty); its URL."""
    name = f"listgate_t{os.getpid()}_{next(_db_counter)}"
    template = f" TEMPLATE {template_db()}" if migrated else ""
    _admin(admin_url, f"CREATE DATABASE {name}{template}")
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drop a test database, disconnecting whatever still uses it."""
    name = urlsplit(url).path.lstrip("/")
    with contextlib.suppress(Exception):  # cleanup must not hide the test's own result
        _admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Admin URL of a PostgreSQL server ($LISTGATE_TEST_DATABASE_URL or a throwaway cluster)."""
    given = os.environ.get("LISTGATE_TEST_DATABASE_URL", "")
    server = None
    if given:
        url = given
    else:
        server = PostgresServer()
        try:
            url = server.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            server.stop()
            require("PostgreSQL", str(exc))
    try:
        make_template(url)
    except Exception as exc:  # noqa: BLE001 - report, do not traceback through every test
        if server:
            server.stop()
        require("PostgreSQL", f"cannot create the template database at {url.split('@')[-1]}: {exc}")
    yield url
    _admin_safe_drop_template(url)
    if server:
        server.stop()


def _admin_safe_drop_template(url: str) -> None:
    with contextlib.suppress(Exception):  # cleanup at the end of the session: nothing to report
        _admin(url, f"DROP DATABASE IF EXISTS {template_db()} WITH (FORCE)")


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test; its URL (dropped afterwards)."""
    url = new_database(postgres_url)
    yield url
    drop_database(postgres_url, url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server ($LISTGATE_TEST_REDIS_URL or a throwaway redis-server)."""
    given = os.environ.get("LISTGATE_TEST_REDIS_URL", "")
    if given:
        given = worker_redis(given)
        _ping_or_require(given)
        yield given
        return
    server = RedisServer()
    try:
        url = server.start()
    except (RuntimeError, OSError) as exc:
        require("Redis", str(exc))
    yield url
    server.stop()


def _ping_or_require(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        require("Redis", f"{url}: {exc}")


@pytest.fixture
def redis_db_url(redis_url: str) -> str:
    """The Redis URL with its database emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of a headless-capable Chromium ($LISTGATE_TEST_CHROMIUM or /usr/bin/chromium)."""
    path = os.environ.get("LISTGATE_TEST_CHROMIUM", "") or CHROMIUM
    if not os.access(path, os.X_OK):
        require("Chromium", f"{path} not found (apt-get install chromium)")
    return path


SERVICE_MARKERS = {
    "postgres_url": "postgres",
    "postgres_db": "postgres",
    "redis_url": "redis",
    "redis_db_url": "redis",
    "chromium_path": "browser",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the services they use, so `-m "not postgres"` etc. select them."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in names:
                item.add_marker(getattr(pytest.mark, marker))


def cut_connections(settings: Settings) -> int:
    """Terminate every other connection to the PostgreSQL database of settings, as a server
    restart does to its clients; how many were cut."""
    other = make_engine(settings)
    try:
        with other.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).scalar_one()
            )
    finally:
        other.dispose()
