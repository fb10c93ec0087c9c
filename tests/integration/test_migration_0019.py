"""Migration 0019 (ids never given again) on an archive, SQLite and PostgreSQL: down and up keep
every post, thread and attachment as it was, the search finds what it found; at head, a list
deleted with its archive leaves its ids unused, so an old /messages/N or /threads/N link never
shows another list's post; PostgreSQL's tables are not rewritten."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from listgate import lists
from listgate.administration import delete_list
from listgate.db import session_factory, transaction, writer
from listgate.models import Attachment, Message, Thread
from listgate.schema import current, head, upgrade
from tests.integration.test_thread_roots import mail, post
from tests.support.migrations import (
    ENGINES,
    as_now,
    before,
    blank_engine,
    downgrade,
    table_file,
)

pytestmark = pytest.mark.integration

engine = pytest.fixture(params=ENGINES, name="engine")(blank_engine)
TABLES = ("messages", "threads", "attachments")


def with_file(mid: str, hours: int) -> bytes:
    """A post with a small attachment (mail() with a MIME body)."""
    head_, _ = mail(mid, f"Files {mid}", hours, "Ann <ann@example.org>").split(b"\r\n\r\n", 1)
    return head_ + (
        b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nzqxnote attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="f.bin"\r\n\r\n'
        + mid.encode()
        + b"\r\n--b--\r\n"
    )


def stored(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables 0019 makes again, by id."""
    with engine.connect() as conn:
        return {
            t: [dict(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id")).mappings()]
            for t in TABLES
        }


def in_columns_now(engine: Engine, archive: dict[str, list[dict[str, Any]]]) -> object:
    """archive in the columns its tables have now (a later revision's come and go too)."""
    return {t: as_now(engine, t, rows) for t, rows in archive.items()}


def found(engine: Engine, word: str) -> int:
    """How many posts the search index finds for word (both databases' own index)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :w"
        else:
            sql = "SELECT count(*) FROM messages WHERE search_vector @@ plainto_tsquery(:w)"
        return int(conn.execute(text(sql), {"w": word}).scalar_one())


def test_0019_down_and_up_keeps_the_archive_and_ids_are_never_given_again(
    engine: Engine,
) -> None:
    upgrade(engine)
    db = session_factory(writer(engine))
    with transaction(db) as s:
        lists.create(s, "dev")
        lists.create(s, "old")
    post(db, "dev", mail("d1@x.test", "Dev one", 1, "Ann <ann@example.org>"))
    post(db, "dev", mail("d2@x.test", "Re: Dev one", 2, "Bob <bob@example.org>", "<d1@x.test>"))
    post(db, "dev", with_file("d3@x.test", 3))
    post(db, "old", with_file("o1@x.test", 4))  # the newest rows: the ids a purge frees
    post(db, "old", mail("o2@x.test", "Re: Files", 5, "Bob <bob@example.org>", "<o1@x.test>"))
    archive = stored(engine)
    assert len(archive["attachments"]) == 2
    files = {t: table_file(engine, t) for t in TABLES} if engine.dialect.name != "sqlite" else {}

    for _ in range(2):
        downgrade(engine, before("0019"))
        assert current(engine) == before("0019")
        assert stored(engine) == in_columns_now(engine, archive)
        assert found(engine, "zqxnote") == 2
        upgrade(engine)
        assert current(engine) == head()
        assert stored(engine) == archive
        assert found(engine, "zqxnote") == 2
    if files:
        assert {t: table_file(engine, t) for t in TABLES} == files  # no table rewritten

    with session_factory(writer(engine))() as s:
        given = {m: s.scalar(select(func.max(m.id))) or 0 for m in (Message, Thread, Attachment)}
    with transaction(db) as s:
        delete_list(s, lists.require(s, "old"), "admin@example.org", purge=True)
    post(db, "dev", with_file("d4@x.test", 6))
    with session_factory(writer(engine))() as s:
        new = s.scalars(select(Message).where(Message.message_id == "d4@x.test")).one()
        assert new.id > given[Message], (new.id, given)
        assert new.thread_id > given[Thread], (new.thread_id, given)
        (attached,) = new.attachments
        assert attached.id > given[Attachment], (attached.id, given)
    assert found(engine, "zqxnote") == 2  # d3 and d4: the deleted list's words are gone
