"""A thread's participants are the people with a visible post in it, on SQLite and PostgreSQL:
hiding, removing and restoring posts moves the count the list page, the thread page and the API
show, and someone whose posts were all hidden is counted again when they post anew.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists, reports
from listgate.config import Settings
from listgate.db import transaction
from listgate.models import Message
from listgate.removal import remove
from tests.support.config import env_for, migrated
from tests.support.factories import make_mail, post, stored_pk

pytestmark = pytest.mark.integration
ALICE, BOB, CAROL = (
    "Alice <alice@example.org>",
    "Bob <bob@example.org>",
    "Carol <carol@example.org>",
)


@dataclass
class Site:
    client: FlaskClient
    db: sessionmaker[Session]


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    from webarchive import create_app

    extra = (
        {"LISTGATE_DATABASE_URL": request.getfixturevalue("postgres_db")}
        if request.param == "postgresql"
        else {}
    )
    settings = Settings.from_env(env_for(tmp_path, **extra))
    db = migrated(settings)
    with transaction(db) as s:
        lists.create(s, "dev")
    app = create_app(settings)
    try:
        yield Site(app.test_client(), db)
    finally:
        app.extensions["listgate"].engine.dispose()


def _post(site: Site, msgid: str, sender: str, reply_to: str | None = None) -> int:
    subject = "Re: Plan" if reply_to else "Plan"
    raw = make_mail(subject, msgid=msgid, sender=sender, in_reply_to=reply_to)
    return stored_pk(post(site.db, raw))


def _shown(site: Site, thread_id: int) -> dict[str, int]:
    """The participants the API, the list page and the thread page show."""
    [row] = site.client.get("/api/lists/dev/threads").get_json()["threads"]
    listing = site.client.get("/lists/dev/").get_data(as_text=True)
    page = site.client.get(f"/threads/{thread_id}").get_data(as_text=True)
    return {
        "api": row["participants"],
        "list page": int(re.findall(r"(\d+) participants?", listing)[0]),
        "thread page": int(re.findall(r"(\d+) participants?", page)[0]),
    }


def _each(n: int) -> dict[str, int]:
    return {"api": n, "list page": n, "thread page": n}


def _hide(site: Site, pk: int, back: bool = False) -> None:
    with transaction(site.db) as s:
        msg = s.get_one(Message, pk)
        (reports.restore if back else reports.hide)(s, msg)


def test_hides_removals_and_restores_move_the_participants_shown(site: Site) -> None:
    start = _post(site, "s@x", ALICE)
    bob1 = _post(site, "b1@x", BOB, "s@x")
    bob2 = _post(site, "b2@x", BOB, "b1@x")
    carol = _post(site, "c@x", CAROL, "s@x")
    with site.db() as s:
        thread_id = s.get_one(Message, start).thread_id
    assert _shown(site, thread_id) == _each(3)

    _hide(site, carol)  # her only post
    assert _shown(site, thread_id) == _each(2)
    _hide(site, bob1)  # he still shows one
    assert _shown(site, thread_id) == _each(2)
    _hide(site, bob2)
    assert _shown(site, thread_id) == _each(1)
    _hide(site, carol, back=True)
    assert _shown(site, thread_id) == _each(2)
    with transaction(site.db) as s:
        remove(s, [s.get_one(Message, start)], "spam", "mod@example.org")
    assert _shown(site, thread_id) == _each(1)

    _post(site, "b3@x", BOB, "c@x")  # all his posts hidden: he takes part again
    assert _shown(site, thread_id) == _each(2)
    _hide(site, bob1, back=True)  # one more of his: he was counted already
    assert _shown(site, thread_id) == _each(2)
