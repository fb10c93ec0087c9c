"""The DATA decision for a batch (admit_all) against the same rules asked one message at a time."""

from __future__ import annotations

from typing import Any, Unpack

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from listgate import lists
from listgate.addresses import parse_recipient
from listgate.admission import (
    COMMAND,
    DROPPED,
    DUPLICATE,
    HELD_FOR_MODERATION,
    REFUSED,
    STORED,
    VARIANT,
    Ask,
    BatchFacts,
    SessionFacts,
    admit,
    admit_all,
)
from listgate.db import transaction
from listgate.ingest import ingest
from listgate.mail.parser import parse, parse_head
from listgate.models import Ban, MailingList
from listgate.states import ListPolicy
from tests.support.factories import ListOptions, MakeList

DOMAIN = "lists.test"


@pytest.fixture(params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, make_list: MakeList
) -> tuple[sessionmaker[Session], MakeList]:
    """(session factory, make_list) on a fresh database of each kind: the batch read is one
    statement in each dialect."""
    if request.param == "sqlite":
        return request.getfixturevalue("db"), make_list
    pg: sessionmaker[Session] = request.getfixturevalue("pg_db")

    def make(name: str = "dev", **kwargs: Unpack[ListOptions]) -> MailingList:
        with transaction(pg) as session:
            return lists.create(session, name, **kwargs)

    return pg, make


def _ask(frm: str, rcpts: list[str], extra: str = "", msgid: str = "", sender: str = "") -> Ask:
    msgid = msgid or f"{frm}-{len(rcpts)}-{len(extra)}@x"
    raw = f"From: {frm}\r\nMessage-ID: <{msgid}>\r\n{extra}\r\nhello\r\n".encode()
    recipients = tuple(r for a in rcpts if (r := parse_recipient(a, DOMAIN)) is not None)
    return Ask(parse_head(raw), raw, sender or frm, recipients)


def _site(db: sessionmaker[Session], make_list: MakeList) -> None:
    make_list("dev")
    make_list("club", policy=ListPolicy.MEMBERS, moderators="mod@example.org")
    make_list("calm", policy=ListPolicy.MODERATED, moderators="mod@example.org")
    with transaction(db) as s:
        lists.subscribe(s, lists.require(s, "club"), "bob@example.org")
        s.add(Ban(list_id=lists.require(s, "dev").id, address="troll@example.org", reason="x"))
    with transaction(db) as s:
        ingest(s, parse(ARCHIVED.raw), lists.require(s, "dev"), domain=DOMAIN)


ARCHIVED = _ask("old@example.org", ["dev@lists.test"], msgid="archived@x")


def _asks() -> list[Ask]:
    every = ["dev@lists.test", "club@lists.test", "calm@lists.test"]
    return [
        _ask("ann@example.org", every),
        _ask("bob@example.org", every),
        _ask("mod@example.org", every),
        # banned by the Sender header alone, on dev only
        _ask("eve@example.org", ["dev@lists.test"], extra="Sender: Troll@Example.org\r\n"),
        _ask("ann@example.org", ["dev@lists.test"], extra="Auto-Submitted: auto-replied\r\n"),
        _ask("ann@example.org", ["dev+help@lists.test", "gone@lists.test"]),
        ARCHIVED,  # the same bytes again; then other bytes under its Message-ID
        _ask("old@example.org", ["dev@lists.test"], extra="X: 1\r\n", msgid="archived@x"),
    ]


def test_a_batch_gets_the_answers_each_message_gets_alone(
    site: tuple[sessionmaker[Session], MakeList],
) -> None:
    db, make_list = site
    _site(db, make_list)
    asks = _asks()
    with db.kw["bind"].connect() as conn:
        batch = admit_all(conn, asks, domain=DOMAIN)
    with db() as s:
        found = {lst.name: lst for lst in (lists.require(s, n) for n in ("dev", "club", "calm"))}
        alone = [
            {
                r: None
                if r.list_name not in found
                else admit(SessionFacts(s), ask, found[r.list_name], r, domain=DOMAIN)
                for r in ask.recipients
            }
            for ask in asks
        ]

    def statuses(decided: list[dict[Any, Any]]) -> list[list[tuple[str, str] | None]]:
        return [
            [None if res is None else (res.status, res.reason) for res in d.values()]
            for d in decided
        ]

    assert statuses(batch) == statuses(alone)
    assert [[res and res.status for res in d.values()] for d in batch] == [
        [STORED, HELD_FOR_MODERATION, HELD_FOR_MODERATION],  # ann: not a member, not a moderator
        [STORED, STORED, HELD_FOR_MODERATION],  # bob: a member of club
        [STORED, STORED, STORED],  # mod: a moderator of both
        [REFUSED],
        [DROPPED],
        [COMMAND, None],  # a command address; a list that does not exist
        [DUPLICATE],
        [VARIANT],
    ]
    dev = parse_recipient("dev@lists.test", DOMAIN)
    assert dev is not None
    refused = batch[3][dev]
    assert refused is not None
    assert refused.reason == "troll@example.org is banned from posting to this list"


def test_the_look_ups_do_not_grow_with_the_batch(
    site: tuple[sessionmaker[Session], MakeList],
) -> None:
    db, make_list = site
    _site(db, make_list)
    engine = db.kw["bind"]
    counted: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's (psycopg sends its own unseen)
            counted.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        sizes = []
        for n in (1, 12):
            counted.clear()
            with engine.connect() as conn:
                admit_all(conn, _asks()[:-2] * n, domain=DOMAIN)  # no duplicate: see below
            sizes.append(len(counted))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # the lists with their bans, archived ids and members: one statement (a message whose
    # Message-ID is archived then compares its bytes alone: two look-ups, rare)
    assert sizes == [1, 1]


def test_batch_facts_read_what_was_not_read_ahead(
    site: tuple[sessionmaker[Session], MakeList],
) -> None:
    db, make_list = site
    _site(db, make_list)
    with db() as s:
        dev, club = lists.require(s, "dev"), lists.require(s, "club")
    with db.kw["bind"].connect() as conn:
        facts = BatchFacts(conn)
        assert facts.first_banned(dev.id, ["friend@example.org", " TROLL@example.org"]) == (
            "troll@example.org"
        )
        assert facts.archived(dev.id, "nothing@x") is None
        assert facts.member(club, "bob@example.org") and facts.member(club, "mod@example.org")
        assert not facts.member(club, "eve@example.org")


def test_sqlite_finds_members_by_the_addresses_asked_not_by_walking_the_list(
    db: sessionmaker[Session], make_list: MakeList
) -> None:
    """Without statistics SQLite would pick the (list, kind, status) index and walk every
    subscriber of a members-only list for each look-up (3 ms at 20,000 members): at DATA for the
    batch, and in the archiver (SessionFacts) for each message."""
    from listgate import policy

    club = make_list("club", policy=ListPolicy.MEMBERS)
    engine = db.kw["bind"]
    ran: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "subscriptions" in statement:
            ran.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.connect() as conn:
            admit_all(conn, [_ask("ann@example.org", ["club@lists.test"])], domain=DOMAIN)
            policy.members_among(conn, club, ["ann@example.org", "bob@example.org"])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(ran) == 2
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for statement, parameters in ran:
            plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
            steps = [step for step in plan if "subscriptions" in step]
            assert len(steps) == 1, plan
            assert steps[0].endswith("(list_id=? AND address=?)"), plan  # the unique index
