"""The test-service helper: a missing service fails the test in CI and skips it elsewhere."""

from __future__ import annotations

import pytest

from tests.support.services import in_ci, require, with_database


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
