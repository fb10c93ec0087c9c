"""The test-service helper: a missing service fails the test in CI and skips it elsewhere."""

from __future__ import annotations

import pytest

from tests.support.services import in_ci, require, template_db, with_database, worker_redis


def test_a_missing_service_skips_locally_with_a_one_line_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        require("Redis", "redis-server not found")
    assert str(info.value) == "Redis unavailable: redis-server not found"


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_a_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL unavailable: initdb failed"):
        require("PostgreSQL", "initdb failed")


def test_ci_false_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    assert not in_ci()


def test_test_databases_sit_beside_the_admin_database() -> None:
    assert (
        with_database("postgresql://pg@127.0.0.1:5433/postgres", "t1")
        == "postgresql://pg@127.0.0.1:5433/t1"
    )
    assert (
        with_database("postgresql://u:p@db/x?sslmode=disable", "t2")
        == "postgresql://u:p@db/t2?sslmode=disable"
    )


def test_each_test_process_has_its_own_template_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes sharing one server ($LISTGATE_TEST_DATABASE_URL) each drop and make their
    template at their start: one name for all dropped another's while it copied from it.
    """
    names = set()
    for name in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", name)
        names.add(template_db())
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    names.add(template_db())
    assert len(names) == 4, names


def test_each_test_process_has_its_own_database_of_a_shared_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shared Redis ($LISTGATE_TEST_REDIS_URL): each test's flushdb empties its process's own."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert worker_redis("redis://r:6379/2") == "redis://r:6379/2"
    urls = []
    for name in ("gw0", "gw1", "gw3"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", name)
        urls.append(worker_redis("redis://r:6379/2"))
    assert urls == ["redis://r:6379/2", "redis://r:6379/3", "redis://r:6379/5"]
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw14")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no database 16 for test process gw14"):
        worker_redis("redis://r:6379/2")
