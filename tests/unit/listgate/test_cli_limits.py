"""What an administrator writes on the command line is stored whole or refused with a message
naming the field and its limit (exit 1, nothing changed), never cut, never a traceback. The same
journey runs on PostgreSQL, whose VARCHAR(n) counts characters
(tests/integration/test_write_limits_postgres.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import cli, lists, subscriptions
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import MailingList, NotPosted, OutboxEntry, Removal, Subscription
from listgate.schema import upgrade
from tests.support.config import make_settings
from tests.support.factories import make_mail, post
from tests.unit.webarchive.test_write_limits import at, over

Factory = sessionmaker[Session]


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env)


def refused(result: Result, message: str) -> None:
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit), result.output
    assert f"Error: {message}" in result.output


def titles(factory: Factory) -> dict[str, str]:
    with factory() as session:
        return dict(session.execute(select(MailingList.name, MailingList.title)).all())


def cli_journey(env: dict[str, str], factory: Factory) -> None:
    """Titles, reasons and who acted (--by): one character over the limit, then at it."""
    title = "title: too long: at most 200 characters (this one has 201)"
    refused(run(env, "lists", "create", "dev", "--title", over(200)), title)
    assert titles(factory) == {}
    assert run(env, "lists", "create", "dev", "--title", at(200)).exit_code == 0
    refused(run(env, "lists", "edit", "dev", "--title", over(200)), title)
    assert titles(factory) == {"dev": at(200)}
    assert run(env, "lists", "edit", "dev", "--title", "Dev").exit_code == 0
    assert titles(factory) == {"dev": "Dev"}

    about = "description: too long: at most 2,000 characters (this one has {})"
    for description, has in ((over(2000), "2,001"), ("d" * 50_000_000, "50,000,000")):
        refused(run(env, "lists", "create", "big", "--description", description), about.format(has))
        refused(run(env, "lists", "edit", "dev", "--description", description), about.format(has))
    assert titles(factory) == {"dev": "Dev"}
    assert run(env, "lists", "create", "big", "--description", at(2000)).exit_code == 0
    assert run(env, "lists", "edit", "dev", "--description", at(2000)).exit_code == 0
    with factory() as session:
        described = session.execute(select(MailingList.name, MailingList.description)).all()
    assert sorted(described) == [("big", at(2000)), ("dev", at(2000))]

    reason = "reason: too long: at most 2,000 characters (this one has 2,001)"
    assert run(env, "lists", "create", "club", "--private").exit_code == 0
    with transaction(factory) as session:
        club = lists.require(session, "club")
        subscriptions.change(
            session, club, "cy@example.org", subscriptions.EVERY_POST, channel="web"
        )
    refusal = ("requests", "refuse", "cy@example.org", "--list", "club", "--reason")
    refused(run(env, *refusal, over(2000)), reason)
    with factory() as session:
        assert session.scalars(select(Subscription.status)).all() == ["awaiting"]
    assert run(env, *refusal, at(2000)).exit_code == 0
    with factory() as session:
        payloads = [json.loads(p) for p in session.scalars(select(OutboxEntry.payload))]
    assert [p["reason"] for p in payloads if p.get("template") == "refused"] == [at(2000)]

    by = "by: too long: at most 320 characters (this one has 321)"
    with transaction(factory) as session:
        club = lists.require(session, "club")
        subscriptions.change(
            session, club, "dee@example.org", subscriptions.EVERY_POST, channel="web"
        )
    approval = ("requests", "approve", "dee@example.org", "--list", "club", "--by")
    refused(run(env, *approval, over(320)), by)
    assert run(env, *approval, at(320)).exit_code == 0
    with factory() as session:
        assert session.scalars(select(Subscription.approved_by)).all() == ["", at(320)]
    auto = make_mail("Away", msgid="away@x", headers={"Auto-Submitted": "auto-replied"})
    assert post(factory, auto).status != "stored"  # kept in the not-posted queue
    refused(run(env, "not-posted", "release", "1", "--by", over(320)), by)
    assert run(env, "not-posted", "release", "1", "--by", at(320)).exit_code == 0
    with factory() as session:
        assert session.scalars(select(NotPosted.released_by)).all() == [at(320)]

    post(factory, make_mail("Oops", msgid="oops@x"), domain="lists.test")
    refused(run(env, "messages", "remove", "oops@x", "--reason", over(2000)), reason)
    with factory() as session:
        assert session.scalars(select(Removal)).all() == []
    assert run(env, "messages", "remove", "oops@x", "--reason", at(2000)).exit_code == 0
    with factory() as session:
        assert session.scalars(select(Removal.reason)).all() == [at(2000)]


def cli_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment the listgate command runs with (a data dir in tmp_path)."""
    return {
        "LISTGATE_DATA_DIR": str(tmp_path / "var"),
        "LISTGATE_DOMAIN": "lists.test",
        "LISTGATE_SECRET_KEY": "test-secret-key-0123456789",
        **more,
    }


def test_cli_limits(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    engine = make_engine(make_settings(tmp_path, **env))
    upgrade(engine)
    try:
        cli_journey(env, session_factory(writer(engine)))
    finally:
        engine.dispose()
