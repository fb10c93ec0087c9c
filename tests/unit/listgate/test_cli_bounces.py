"""The owner's commands for a subscriber with a history of bounces: taken back with
`listgate subscribe` from a fresh score (reports about copies sent before do not count again,
those sent since do), and `listgate unsubscribe` of a suspended subscriber."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from listgate.config import Settings
from listgate.states import SubscriptionState
from tests.support.commands import command_env, migrated_site, run
from tests.unit.worker.test_bounces import dsn
from tests.unit.worker.test_bounces_over_time import DEAD, PAT, copy_to, report, state


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return command_env(tmp_path, LISTGATE_BOUNCE_SCORE_LIMIT="2")


@pytest.fixture
def site(tmp_path: Path, env: dict[str, str]) -> tuple[sessionmaker[Session], Settings]:
    return migrated_site(tmp_path, env)


def test_an_owner_takes_back_a_suspended_subscriber_from_a_fresh_score(
    env: dict[str, str], site: tuple[sessionmaker[Session], Settings]
) -> None:
    db, settings = site
    run(env, "lists", "create", "dev")
    run(env, "subscribe", PAT, "--list", "dev")
    old = [copy_to(db, settings), copy_to(db, settings)]
    for token in old:
        report(db, settings, token, dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.SUSPENDED, 2.0)

    result = run(env, "subscribe", PAT.upper(), "--list", "dev")
    assert (result.exit_code, result.output) == (0, f"subscribed {PAT} to dev (list)\n")
    assert state(db) == (SubscriptionState.ACTIVE, 0.0)
    for token in old:  # late reports about the copies that suspended her
        report(db, settings, token, dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.ACTIVE, 0.0)
    report(db, settings, copy_to(db, settings), dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.ACTIVE, 1.0)


def test_a_suspended_subscriber_unsubscribed_by_an_owner_has_left(
    env: dict[str, str], site: tuple[sessionmaker[Session], Settings]
) -> None:
    db, settings = site
    run(env, "lists", "create", "dev")
    run(env, "subscribe", PAT, "--list", "dev")
    for token in [copy_to(db, settings), copy_to(db, settings)]:
        report(db, settings, token, dsn(PAT, "5.1.1", DEAD))
    result = run(env, "unsubscribe", PAT, "--list", "dev")
    assert (result.exit_code, result.output) == (0, f"{PAT} has left dev.\n")
    assert state(db)[0] == SubscriptionState.ENDED
    result = run(env, "unsubscribe", PAT, "--list", "dev")
    assert (result.exit_code, result.output) == (0, f"{PAT} is not subscribed to dev.\n")
