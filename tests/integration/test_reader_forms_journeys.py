"""Forms of the web archive sent twice at the same moment (a double click on a slow page), on
SQLite and PostgreSQL: the one post the form makes, and nothing kept beside it."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from listgate.models import Message, MessageVariant
from tests.integration.test_reader_purge_journeys import PAT
from tests.integration.test_reader_purge_journeys import archive as archive  # the fixture
from tests.integration.test_web_changes import Site
from tests.integration.test_web_changes import site as site  # the fixture, on both databases
from tests.support.web import session_for

pytestmark = pytest.mark.integration


def test_a_form_sent_twice_at_once_is_one_post(archive: Site) -> None:
    """Two sends of one form racing each other (a double click): one post, on both databases."""
    client = archive.client
    token = session_for(client, PAT)
    page = client.get("/lists/dev/new").get_data(as_text=True)
    key = re.search(r'name="key" value="([^"]+)"', page)
    assert key, "the form has no key"
    form = {"csrf_token": token, "key": key.group(1), "subject": "Once", "body": "Only once.\n"}
    app = archive.app

    def send() -> int:
        with app.test_client() as other:
            with other.session_transaction() as cookie, client.session_transaction() as mine:
                cookie.update(mine)
            return other.post("/lists/dev/new", data=form).status_code

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: send(), range(2)))
    assert answers == [303, 303]
    with archive.db() as session:
        subjects = list(session.scalars(select(Message.subject).where(Message.subject == "Once")))
    assert subjects == ["Once"]
    with archive.db() as session:  # the second send was not archived as other bytes of it either
        assert session.scalar(select(func.count()).select_from(MessageVariant)) == 0
