"""A slice of the real linux-man archive, imported and read back through the web archive."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse
from listgate.models import Thread
from tests.support.config import search
from tests.support.corpora import linux_man, linux_man_path

SLICE = 250

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Flask, sessionmaker[Session]]]:
    linux_man_path()  # skips (fails under CI) without the corpora
    from listgate.db import make_engine, session_factory, writer
    from listgate.schema import upgrade
    from tests.support.config import make_settings

    settings = make_settings(tmp_path_factory.mktemp("linuxman"))
    engine = make_engine(settings)
    upgrade(engine)
    factory = session_factory(writer(engine))
    with transaction(factory) as session:
        mlist = lists.create(session, "linux-man", title="linux-man")
        for raw in linux_man(SLICE):
            ingest(session, parse(raw), mlist, domain=settings.domain, origin="import")
    from webarchive import create_app

    app = create_app(settings)
    yield app, factory
    engine.dispose()


def _biggest_threads(factory: sessionmaker[Session], n: int) -> list[Thread]:
    with factory() as session:
        return list(
            session.scalars(
                select(Thread)
                .where(Thread.merged_into_id.is_(None))
                .order_by(Thread.message_count.desc())
                .limit(n)
            )
        )


def test_real_threads_render_whole_in_tree_and_flat(
    imported: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, factory = imported
    client = app.test_client()
    for thread in _biggest_threads(factory, 5):
        assert thread.message_count >= 2
        tree = client.get(f"/threads/{thread.id}").get_data(as_text=True)
        flat = client.get(f"/threads/{thread.id}?view=flat").get_data(as_text=True)
        word = "post" if thread.message_count == 1 else "posts"
        assert f"Showing {thread.message_count} {word}" in tree
        assert (
            tree.count('<article class="post')
            == flat.count('<article class="post')
            == thread.message_count
        )
        assert re.search(r'<article class="post d[1-9]', tree), "a real thread has replies indented"
        api = client.get(f"/api/threads/{thread.id}").get_json()
        assert len(api["messages"]) == thread.message_count
        assert api["messages"][0]["parent_message_id"] is None
        seen = set()
        for m in api["messages"]:
            assert m["parent_message_id"] is None or m["parent_message_id"] in seen
            seen.add(m["message_id"])


def test_list_pages_months_and_search_over_real_mail(
    imported: tuple[Flask, sessionmaker[Session]],
) -> None:
    app, _ = imported
    client = app.test_client()
    listing = client.get("/lists/linux-man/")
    assert listing.status_code == 200 and 'rel="next"' in listing.get_data(as_text=True)
    months = client.get("/lists/linux-man/months").get_data(as_text=True)
    first_month = search(r'href="(/lists/linux-man/\d{4}/\d{1,2})"', months)
    assert client.get(first_month).status_code == 200
    page = client.get("/search?q=manual+page").get_data(as_text=True)
    assert "<mark>" in page


def test_every_imported_message_page_renders(imported: tuple[Flask, sessionmaker[Session]]) -> None:
    app, _ = imported
    client = app.test_client()
    data = client.get("/api/lists/linux-man/threads?limit=200").get_json()
    for thread in data["threads"][:60]:
        assert client.get(f"/threads/{thread['id']}").status_code == 200
