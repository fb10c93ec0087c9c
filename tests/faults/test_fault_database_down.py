"""PostgreSQL stops: the gateway answers 451 (never
250), the web a clear 503; both recover on their own.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.config import prepare, site_env, wait_until
from tests.support.gateway import archived_ids
from tests.support.processes import gateway, http_get, webarchive
from tests.support.reliability import post, post_code, record
from tests.support.services import PostgresServer, require

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.soak]


class StoppablePostgres(PostgresServer):
    """A throwaway cluster this test may stop and start again on the same port."""

    # synchronous_commit stays on: halt() is a crash, and with it off PostgreSQL forgets the
    # last commits (a 250 the gateway gave honestly would then look lost).
    options = "-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"

    def halt(self) -> None:
        """Stop at once (-m immediate: like a crash), connections are cut."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start the stopped cluster again."""
        done = self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.dir} {self.options}",
            "-w",
            "-t",
            "60",
            "start",
        )
        assert done.returncode == 0, done.stderr or done.stdout


@pytest.fixture
def own_postgres() -> Iterator[tuple[StoppablePostgres, str]]:
    """A PostgreSQL cluster only this test uses; yields it and its URL."""
    server = StoppablePostgres()
    try:
        url = server.start()
    except (RuntimeError, OSError) as exc:
        server.stop()
        require("PostgreSQL", str(exc))
    yield server, url
    server.stop()


def test_database_down_gives_451_and_503_then_recovers(
    tmp_path: Path, own_postgres: tuple[StoppablePostgres, str]
) -> None:
    pg, url = own_postgres
    env = site_env(tmp_path, LISTGATE_DATABASE_URL=url)
    settings, db = prepare(env, "dev")
    web_url = f"http://127.0.0.1:{settings.web_port}"
    gw = gateway(env, tmp_path / "gateway.log")
    web = webarchive(env, tmp_path / "web.log")
    try:  # both stopped whichever failed to start
        gw.start()
        web.start()
        assert post_code(settings.smtp_port, "before@example.org") == 250
        assert http_get(web_url + "/lists/dev/")[0] == 200
        # a transaction whose RCPT was accepted before the outage, DATA during it
        open_conn = smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=30)
        open_conn.ehlo()
        open_conn.mail("ann@example.org")
        assert open_conn.rcpt("dev@lists.test")[0] == 250

        pg.halt()
        code, text = open_conn.data(post("mid@example.org"))
        assert (code, text[:5]) == (451, b"4.3.0"), (code, text)
        open_conn.quit()
        codes = [post_code(settings.smtp_port, f"down{i}@example.org") for i in range(5)]
        assert codes == [451] * 5, codes
        for path in ("/", "/lists/dev/", "/api/lists"):
            status, body = http_get(web_url + path)
            assert status == 503, (path, status, body[:300])
            assert "unavailable" in body and "Traceback" not in body

        pg.resume()
        back = time.monotonic()
        wait_until(
            lambda: post_code(settings.smtp_port, "after@example.org") == 250,
            what="the gateway to recover",
        )
        recovery = time.monotonic() - back  # from the database's return to the first 250
        wait_until(lambda: http_get(web_url + "/lists/dev/")[0] == 200, what="the web to recover")
        assert post_code(settings.smtp_port, "mid@example.org") == 250  # the sender's retry
    finally:
        web.stop()
        gw.stop()
    stored = sorted(archived_ids(db))
    record("database (PostgreSQL) down", 7, 0, 0, recovery, "451 while down, 0 accepted-and-lost")
    assert stored == ["after@example.org", "before@example.org", "mid@example.org"]
    assert "storage failed" in gw.text() and "database unavailable" in web.text()


def test_postgresql_restarted_between_posts_the_next_post_gets_its_250_at_once(
    tmp_path: Path, own_postgres: tuple[StoppablePostgres, str]
) -> None:
    """A restart between two posts (no post while it is down): the gateway's pooled connections
    are all cut; the next post is answered 250 on its first try, stored once (the connections
    are found dead and replaced before use, not at the cost of a 451), and so is each after it."""
    pg, url = own_postgres
    env = site_env(tmp_path, LISTGATE_DATABASE_URL=url)
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log")
    try:
        gw.start()
        before = [post_code(settings.smtp_port, f"before{i}@example.org") for i in range(3)]
        assert before == [250] * 3
        pg.halt()
        pg.resume()
        after = [post_code(settings.smtp_port, f"after{i}@example.org") for i in range(3)]
        assert after == [250] * 3, after
    finally:
        gw.stop()
    stored = sorted(archived_ids(db))
    assert stored == sorted(
        [f"before{i}@example.org" for i in range(3)] + [f"after{i}@example.org" for i in range(3)]
    )
