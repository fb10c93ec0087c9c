"""A web process that has served a list's months once shows what mail changes next.

Real SMTP into the gateway, its archiver's batches, PostgreSQL, and one web app throughout
(what it remembers between requests is what is under test).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from listgate.db import transaction
from listgate.models import Message
from listgate.removal import remove
from tests.support.factories import make_mail
from tests.support.gateway import Env, settle

pytestmark = pytest.mark.integration


def _months(client: FlaskClient) -> dict[str, int]:
    """The months page of dev as {"2026-03": posts}."""
    response = client.get("/lists/dev/months")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return {m: int(n) for m, n in re.findall(r">(\d{4}-\d\d)</a> <span[^>]*>(\d+) post", page)}


def _send(env: Env, subject: str, msgid: str, when: datetime) -> None:
    """One post to dev through SMTP, archived before this returns."""
    with env.smtp() as smtp:
        smtp.sendmail(
            "ann@example.org", ["dev@lists.test"], make_mail(subject, msgid=msgid, date=when)
        )
    settle(env.db)


def test_months_after_mail_and_a_removal_on_a_warm_web_process(
    make_env: Callable[..., Env], postgres_db: str
) -> None:
    from webarchive import create_app

    env = make_env(LISTGATE_DATABASE_URL=postgres_db)
    env.make_list("dev")
    env.start()
    app = create_app(env.settings)
    try:
        client = app.test_client()
        for day in (3, 4):
            _send(env, f"March {day}", f"mar{day}@x", datetime(2026, 3, day, 9, tzinfo=UTC))
        assert _months(client) == {"2026-03": 2}
        _send(env, "April news", "apr@x", datetime(2026, 4, 2, 9, tzinfo=UTC))
        assert _months(client) == {"2026-04": 1, "2026-03": 2}
        assert "April news" in client.get("/lists/dev/2026/4").get_data(as_text=True)
        _send(env, "Late old news", "jan@x", datetime(2025, 1, 9, 9, tzinfo=UTC))
        assert _months(client) == {"2026-04": 1, "2026-03": 2, "2025-01": 1}
        with transaction(env.db) as session:
            march = session.scalars(select(Message).where(Message.message_id == "mar3@x")).one()
            remove(session, [march], "off topic", "mod@example.org")
        assert _months(client) == {"2026-04": 1, "2026-03": 1, "2025-01": 1}
        month = client.get("/lists/dev/2026/3").get_data(as_text=True)
        assert "March 4" in month and "March 3" not in month
    finally:
        app.extensions["listgate"].engine.dispose()
