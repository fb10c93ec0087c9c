"""Migration 0011 (lists.changes) on an archive that holds posts, SQLite and PostgreSQL.

The archive is taken back to 0010 (the column goes) and upgraded again: the posts and counts
stay, the list's counter starts at 0, and the next change to what the list shows raises it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select

from listgate import reports
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import ingest
from listgate.lists import create, require
from listgate.mail.parser import parse
from listgate.models import MailingList, Message
from listgate.schema import alembic_config, current, head, upgrade
from tests.support.config import make_settings
from tests.support.factories import make_mail
from tests.support.services import new_database

pytestmark = pytest.mark.integration


def _list(engine: Engine) -> tuple[int, int, int]:
    with session_factory(engine)() as s:
        mlist = s.scalars(select(MailingList)).one()
        return mlist.message_count, mlist.thread_count, mlist.changes


def _down_and_up(engine: Engine) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        create(s, "dev")
    for day in (1, 2):
        with transaction(db) as s:
            mail = make_mail(
                f"Day {day}", msgid=f"d{day}@x", date=datetime(2026, 3, day, tzinfo=UTC)
            )
            ingest(s, parse(mail), require(s, "dev"), domain="lists.test")
    assert _list(engine) == (2, 2, 2)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    upgrade(engine)
    assert current(engine) == head()
    assert _list(engine) == (2, 2, 0)
    with transaction(db) as s:
        reports.hide(s, s.scalars(select(Message).where(Message.message_id == "d1@x")).one())
    assert _list(engine) == (1, 1, 1)


def test_0011_down_and_up_keeps_the_archive_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(make_settings(tmp_path))
    try:
        _down_and_up(engine)
    finally:
        engine.dispose()


def test_0011_down_and_up_keeps_the_archive_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    engine = make_engine(
        make_settings(tmp_path, LISTGATE_DATABASE_URL=new_database(postgres_url, migrated=False))
    )
    try:
        _down_and_up(engine)
    finally:
        engine.dispose()
