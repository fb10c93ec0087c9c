"""Migration 0013 (subscriptions by address) on an archive that holds posts and subscribers.

The archive is taken back to the revision before 0013 (the index goes) and upgraded again:
posts and subscriptions stay, the index is back, and the archive takes mail and subscribers.
(test_subscription_plans holds what the index is for.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select

from listgate.db import make_engine, session_factory, transaction, writer
from listgate.lists import create, subscribe
from listgate.models import Message, Subscription
from listgate.schema import alembic_config, current, head, upgrade
from tests.support.config import make_settings
from tests.support.factories import make_mail, post
from tests.support.services import new_database

pytestmark = pytest.mark.integration

INDEX = "ix_subscriptions_address"


def _state(engine: Engine) -> tuple[int, list[tuple[str, str]], bool]:
    """(posts, each subscription's address and kind, whether the index is there)."""
    with session_factory(engine)() as s:
        posts = s.scalar(select(func.count()).select_from(Message)) or 0
        addresses = [
            (a, str(k))
            for a, k in s.execute(
                select(Subscription.address, Subscription.kind).order_by(Subscription.id)
            )
        ]
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("subscriptions")}
    return posts, addresses, INDEX in indexes


def _down_and_up(engine: Engine) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        dev = create(s, "dev")
        for address in ("ann@example.org", "bob@example.org"):
            subscribe(s, dev, address)
    for n in range(3):
        post(db, make_mail(f"Post {n}", msgid=f"p{n}@x"))
    posts, subs, indexed = _state(engine)
    # the two members, and the author following each thread they started
    assert (posts, len(subs), indexed) == (3, 5, True)
    cfg = alembic_config()
    before = ScriptDirectory.from_config(cfg).get_revision("0013").down_revision
    assert isinstance(before, str)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, before)
    assert _state(engine) == (3, subs, False)
    upgrade(engine)
    assert current(engine) == head()
    assert _state(engine) == (3, subs, True)
    with transaction(db) as s:  # the archive takes mail and subscribers after the round trip
        subscribe(s, s.merge(dev), "cy@example.org")
    post(db, make_mail("Post 3", msgid="p3@x"))
    posts, after, _ = _state(engine)
    assert (posts, after[: len(subs)], after[len(subs)]) == (4, subs, ("cy@example.org", "list"))


@pytest.fixture(params=["sqlite", "postgresql"])
def new_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a new, empty database of each kind (not migrated yet)."""
    env = {}
    if request.param == "postgresql":
        admin = request.getfixturevalue("postgres_url")
        env["LISTGATE_DATABASE_URL"] = new_database(admin, migrated=False)
    engine = make_engine(make_settings(tmp_path, **env))
    yield engine
    engine.dispose()


def test_0013_down_and_up_keeps_the_archive(new_engine: Engine) -> None:
    _down_and_up(new_engine)
