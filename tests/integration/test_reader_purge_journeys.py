"""A purge leaves nothing of a post, whatever happened to it before, on SQLite and PostgreSQL.

Pat writes a post on the web and edits it (every version is kept); Ann's mail comes twice with
one Message-ID and other bytes (the second is kept beside the first). The moderators purge both
(a legal takedown). Then no row of any table holds their words, as text or as stored bytes, and
nothing of them is served; new mail is archived and shown as before.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from listgate import lists
from listgate.db import transaction
from listgate.models import Message
from listgate.removal import remove
from tests.integration.test_web_changes import Site, _archive, _post
from tests.integration.test_web_changes import site as site  # the fixture, on both databases
from tests.support.factories import make_mail
from tests.support.leftovers import rows_holding
from tests.support.web import session_for

pytestmark = pytest.mark.integration

MOD, PAT = "mod@example.org", "pat@example.org"
WORDS = ("wombatplan", "quokkaleak")  # one word of each purged post, found nowhere else


@pytest.fixture
def archive(site: Site) -> Site:
    """The site with the list dev, moderated by MOD."""
    with transaction(site.db) as session:
        lists.create(session, "dev", moderators=MOD)
    return site


def test_a_purge_leaves_no_version_and_no_variant_of_a_post(archive: Site) -> None:
    site, client = archive, archive.client
    token = session_for(client, PAT)
    written = client.post(
        "/lists/dev/new",
        data={"csrf_token": token, "subject": "Plans", "body": f"The {WORDS[0]} is on.\n"},
    )
    assert written.status_code == 303, written.get_data(as_text=True)
    pk = int(re.search(r"#m(\d+)", written.headers["Location"]).group(1))  # type: ignore[union-attr]
    edited = client.post(
        f"/messages/{pk}/edit", data={"csrf_token": token, "body": "Nothing to see.\n"}
    )
    assert edited.status_code == 303
    assert f"The {WORDS[0]} is on." in client.get(f"/messages/{pk}/history").get_data(as_text=True)

    when = datetime(2026, 3, 3, 9, tzinfo=UTC)
    mailed = _post(site, "Leak", "leak@x", when, body=f"A {WORDS[1]}.\n")
    variant = _archive(site, make_mail("Leak", f"A {WORDS[1]}, again.\n", msgid="leak@x"))
    assert variant.status == "variant", variant

    with transaction(site.db) as session:
        posts = list(session.scalars(select(Message).where(Message.id.in_((pk, mailed)))))
        remove(session, posts, "legal request", MOD, purge=True)
    for word in WORDS:
        assert rows_holding(site.app.extensions["listgate"].engine, word) == [], word
    for path in (f"/messages/{pk}/history", f"/messages/{mailed}", f"/messages/{mailed}.eml"):
        assert not any(w in client.get(path).get_data(as_text=True) for w in WORDS), path
    assert "No posts match" in client.get(f"/search?q={WORDS[1]}").get_data(as_text=True)

    _post(site, "After", "after@x", datetime(2026, 3, 4, 9, tzinfo=UTC), body="New words.\n")
    assert "After" in client.get("/lists/dev/").get_data(as_text=True)
