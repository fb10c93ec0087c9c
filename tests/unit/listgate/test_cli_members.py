"""The owner's commands about a list's members after their lives went on.

`listgate lists members`: who is on the list, joined for every post or a digest, suspended by
bounces, left, invited and not confirmed yet, following a thread; and a clear answer to a list or
a state that does not exist. A subscriber with a history of bounces: taken back with `listgate
subscribe` from a fresh score (reports about copies sent before do not count again, those sent
since do), and `listgate unsubscribe` of a suspended subscriber."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy.orm import Session, sessionmaker

from listgate.config import Settings
from listgate.states import SubscriptionState
from tests.support.commands import command_env, migrated_site, run
from tests.support.factories import make_mail, post
from tests.unit.worker.test_bounces import dsn
from tests.unit.worker.test_bounces_over_time import DEAD, PAT, copy_to, report, state

ANN, BOB, DAN, ERIN = "ann@example.org", "bob@example.org", "dan@example.org", "erin@example.org"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return command_env(tmp_path, LISTGATE_BOUNCE_SCORE_LIMIT="2")


@pytest.fixture
def site(tmp_path: Path, env: dict[str, str]) -> tuple[sessionmaker[Session], Settings]:
    return migrated_site(tmp_path, env)


def _columns(result: Result) -> list[list[str]]:
    """Each line of the listing, split on runs of two spaces or more (the columns)."""
    return [
        [c.strip() for c in line.split("  ") if c.strip()] for line in result.output.splitlines()
    ]


def test_the_members_after_a_while(
    env: dict[str, str], site: tuple[sessionmaker[Session], Settings]
) -> None:
    db, settings = site
    run(env, "lists", "create", "dev")
    assert run(env, "lists", "members", "dev").output == "dev has no members\n"
    for address, extra in ((ANN, ()), (BOB, ("--digest",)), (PAT, ()), (DAN, ())):
        assert run(env, "subscribe", address, "--list", "dev", *extra).exit_code == 0
    for _ in range(2):  # two copies to Pat bounce: suspended (limit 2)
        report(db, settings, copy_to(db, settings), dsn(PAT, "5.1.1", DEAD))
    assert state(db) == (SubscriptionState.SUSPENDED, 2.0)
    assert run(env, "unsubscribe", DAN, "--list", "dev").exit_code == 0
    assert run(env, "subscribe", ERIN, "--list", "dev", "--invite").exit_code == 0
    thread = post(db, make_mail("Topic", msgid="topic@x")).thread_id
    assert run(env, "subscribe", DAN, "--list", "dev", "--thread", str(thread)).exit_code == 0

    members = run(env, "lists", "members", "dev")
    assert members.exit_code == 0, members.output
    rows = _columns(members)
    assert [r[:3] for r in rows[:-1]] == [
        [ANN, "every post", "active"],
        [BOB, "daily digest", "active"],
        [PAT, "every post", "suspended (bounces, score 2)"],
    ], members.output
    assert all(r[3].startswith("since 20") for r in rows[:-1]), members.output
    assert rows[-1] == ["3 members: 2 active, 1 suspended"]

    ended = _columns(run(env, "lists", "members", "dev", "--status", "ended"))
    assert [r[:2] for r in ended[:-1]] == [[DAN, "every post"]]
    assert ended[0][2].startswith("ended") and ended[0][-1].startswith("ended 20")
    assert [
        r[:3] for r in _columns(run(env, "lists", "members", "dev", "--status", "pending"))
    ] == [
        [ERIN, "every post", "pending"],
        ["1 subscription: 1 pending"],
    ]
    every = _columns(run(env, "lists", "members", "dev", "--status", "all", "--threads"))
    assert [r[:2] for r in every[:-1]] == [
        *(["alice@example.org", f"thread {n}"] for n in (1, 2, 3)),  # an author follows
        [ANN, "every post"],
        [BOB, "daily digest"],
        [DAN, "every post"],
        [DAN, f"thread {thread}"],
        [ERIN, "every post"],
        [PAT, "every post"],
    ], every
    assert every[-1] == ["9 subscriptions: 6 active, 1 ended, 1 pending, 1 suspended"]


def test_a_list_or_a_state_that_does_not_exist(
    env: dict[str, str], site: tuple[sessionmaker[Session], Settings]
) -> None:
    missing = run(env, "lists", "members", "nope")
    assert missing.exit_code == 1 and "nope" in missing.output, missing.output
    assert "Traceback" not in missing.output
    run(env, "lists", "create", "dev")
    wrong = run(env, "lists", "members", "dev", "--status", "gone")
    assert wrong.exit_code == 2 and "'gone' is not one of" in wrong.output, wrong.output
    assert run(env, "lists", "members", "dev", "--status", "suspended").output == (
        "dev has no suspended subscriptions\n"
    )
    assert "--threads" in run(env, "lists", "members", "--help").output


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
