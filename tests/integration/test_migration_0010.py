"""Migration 0010 (variant threading) on an archive that holds threads and a variant, SQLite and
PostgreSQL.

The archive is threaded, taken back to 0009 (the columns go) and upgraded again: every
message is placed by its own Date and subject as before, the replies keep their parents, and
an earlier-dated copy arriving afterwards moves its message to the thread it answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select

from listgate.db import make_engine, session_factory, transaction, writer
from listgate.ingest import ingest
from listgate.lists import create, require
from listgate.mail.parser import parse
from listgate.models import Message
from listgate.schema import alembic_config, current, head, upgrade
from tests.support.config import make_settings
from tests.support.services import new_database

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _mail(mid: str, subject: str, hours: int, refs: str = "", body: str = "text") -> bytes:
    date = (T0 + timedelta(hours=hours)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    head_ = (
        f"From: ann@example.org\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{mid}>\r\n"
    )
    return (head_ + (f"References: <{refs}>\r\n" if refs else "") + f"\r\n{body}\r\n").encode()


def _post(engine: Engine, raw: bytes) -> str:
    with transaction(session_factory(writer(engine))) as s:
        return ingest(s, parse(raw), require(s, "dev"), domain="lists.test", origin="import").status


def _placed(engine: Engine) -> dict[str, tuple[str | None, datetime, str]]:
    """message_id -> (parent's message_id, thread_date, thread_subject_norm)."""
    with session_factory(writer(engine))() as s:
        rows = s.scalars(select(Message)).all()
        by_pk = {m.id: m.message_id for m in rows}
        return {
            m.message_id: (
                by_pk.get(m.parent_id) if m.parent_id is not None else None,
                m.thread_date,
                m.thread_subject_norm,
            )
            for m in rows
        }


def _down_up_and_rehang(engine: Engine) -> None:
    upgrade(engine)
    with transaction(session_factory(writer(engine))) as s:
        create(s, "dev")
    for raw in (
        _mail("a@x.test", "Plans", 0),
        _mail("c@x.test", "Other", 1),
        _mail("b@x.test", "Re: Plans", 3, refs="a@x.test"),
        _mail("b@x.test", "Re: Plans", 5, refs="c@x.test", body="later copy"),
    ):  # later: moves nothing
        _post(engine, raw)
    before = _placed(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    upgrade(engine)
    assert current(engine) == head()
    assert _placed(engine) == before and before["b@x.test"] == (
        "a@x.test",
        T0 + timedelta(hours=3),
        "plans",
    )
    assert (
        _post(engine, _mail("b@x.test", "Re: Other", 2, refs="c@x.test", body="first copy"))
        == "variant"
    )
    assert _placed(engine)["b@x.test"] == ("c@x.test", T0 + timedelta(hours=2), "other")


def test_0010_down_and_up_keeps_the_forest_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(make_settings(tmp_path))
    try:
        _down_up_and_rehang(engine)
    finally:
        engine.dispose()


def test_0010_down_and_up_keeps_the_forest_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    engine = make_engine(
        make_settings(tmp_path, LISTGATE_DATABASE_URL=new_database(postgres_url, migrated=False))
    )
    try:
        _down_up_and_rehang(engine)
    finally:
        engine.dispose()
