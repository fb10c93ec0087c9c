"""`listgate import` into PostgreSQL leaves the planner statistics of what it filled.

Right after a bulk import, before autovacuum gets to the tables, the gateway's duplicate look-up
must already find a batch's Message-IDs by probing an index, not by walking every message of the
list. Without statistics both its plans walked it: on the first 3,000 posts of linux-man, 0.60 ms
reading past 2,995 rows instead of 0.035 ms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, event, text

from listgate import lists
from listgate.addresses import parse_recipient
from listgate.admission import Ask, admit_all
from listgate.cli import main
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction
from listgate.mail.parser import parse_head
from listgate.statistics import ANNOUNCE
from tests.support.config import DOMAIN, env_for

pytestmark = pytest.mark.integration

FILLED = (
    "messages",
    "raw_messages",
    "threads",
    "thread_nodes",
    "message_refs",
    "thread_participants",
)
POSTS = 300


def _mbox(count: int) -> bytes:
    """count posts, two replies per thread starter, with a body of a few hundred bytes each."""
    out = []
    for i in range(count):
        refs = f"In-Reply-To: <p{i - i % 3}@x>\n" if i % 3 else ""
        out.append(
            f"From post@example.org Mon Mar  2 10:00:00 2026\nFrom: u{i % 40}@example.org\n"
            f"Subject: {'Re: ' if refs else ''}Topic {i // 3}\nMessage-ID: <p{i}@x>\n{refs}"
            f"Date: Mon, 2 Mar 2026 10:{i % 60:02d}:00 +0000\n\n" + "Some words. " * 40 + "\n\n"
        )
    return "".join(out).encode()


@pytest.fixture
def imported(tmp_path: Path, postgres_db: str) -> Iterator[tuple[Any, Any]]:
    """A fresh PostgreSQL archive after `listgate import` of POSTS posts: (engine, CLI result)."""
    env = env_for(tmp_path, LISTGATE_DATABASE_URL=postgres_db)
    engine = make_engine(Settings.from_env(env))
    with transaction(session_factory(engine)) as session:
        lists.create(session, "dev")
        lists.create(session, "other")
        # The state right after a bulk import: autovacuum, which would analyze these tables a
        # minute or so later, is kept out so that only the import's own ANALYZE counts.
        for name in FILLED:
            session.execute(text(f"ALTER TABLE {name} SET (autovacuum_enabled = false)"))
    (tmp_path / "posts.mbox").write_bytes(_mbox(POSTS))
    result = CliRunner(env=env).invoke(
        main, ["import", str(tmp_path / "posts.mbox"), "--list", "dev"]
    )
    yield engine, result
    engine.dispose()


def test_an_import_analyzes_the_tables_it_filled(imported: tuple[Any, Any]) -> None:
    engine, result = imported
    assert result.exit_code == 0, result.output
    assert f"imported:   {POSTS}" in result.output
    assert ANNOUNCE in result.stderr
    with engine.connect() as conn:
        analyzed = dict(
            conn.execute(
                text(
                    "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(:t)"
                ),
                {"t": list(FILLED)},
            ).all()
        )
    assert analyzed == dict.fromkeys(FILLED, 1)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
def test_the_duplicate_look_up_probes_message_ids_right_after_an_import(
    imported: tuple[Any, Any], mode: str
) -> None:
    """The statement the gateway runs for a batch (admit_all), planned with its values (custom)
    and without them (generic: what a statement psycopg prepares after five runs may settle on)."""
    engine, result = imported
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        statement, params = _gateway_look_up(conn, ["p17@x", "p200@x", "new@x"])
        scans = _scans_of_messages(_explain(conn, statement, params, mode))
    assert scans, "the look-up reads no messages"
    for scan in scans:
        assert "message_id" in scan["cond"], f"walks the list instead of probing: {scan}"


def _gateway_look_up(conn: Connection, message_ids: list[str]) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of the gateway's look-up for posts with these Message-IDs to dev."""
    asks = []
    for message_id in message_ids:
        raw = f"From: a@example.org\r\nMessage-ID: <{message_id}>\r\n\r\nhi\r\n".encode()
        recipient = parse_recipient(f"dev@{DOMAIN}", DOMAIN)
        assert recipient is not None
        asks.append(Ask(parse_head(raw), raw, "a@example.org", (recipient,)))
    seen: list[tuple[str, dict[str, Any]]] = []

    def grab(*args: Any) -> None:
        seen.append((args[2], args[3]))

    event.listen(conn, "before_cursor_execute", grab)
    try:
        admit_all(conn, asks, domain=DOMAIN)
    finally:
        event.remove(conn, "before_cursor_execute", grab)
    return next((s, p) for s, p in seen if "FROM messages" in s and "message_id = ANY" in s)


def _explain(conn: Connection, statement: str, params: dict[str, Any], mode: str) -> Any:
    """EXPLAIN's plan (JSON) of the statement, prepared, under plan_cache_mode = mode."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", statement)
    values = ", ".join(f"%({name})s" for name in names)
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with psycopg.ClientCursor(driver) as cur:
        cur.execute(f"SET plan_cache_mode = {mode}")
        cur.execute(f"PREPARE lg_look_up AS {numbered}")
        cur.execute(f"EXPLAIN (FORMAT JSON) EXECUTE lg_look_up({values})", params)
        plan = cur.fetchone()
        cur.execute("DEALLOCATE lg_look_up")
        cur.execute("RESET plan_cache_mode")
    assert plan is not None
    found = plan[0]
    return json.loads(found) if isinstance(found, str) else found


def _scans_of_messages(plan: Any) -> list[dict[str, str]]:
    """Each read of the messages table in the plan, with the index condition it reads by."""
    scans = []

    def index_conds(node: dict[str, Any]) -> str:
        own = node.get("Index Cond", "")
        return " ".join([own, *(index_conds(child) for child in node.get("Plans", []))]).strip()

    def visit(node: dict[str, Any]) -> None:
        if node.get("Relation Name") == "messages":
            scans.append({"type": node["Node Type"], "cond": index_conds(node)})
        for child in node.get("Plans", []):
            visit(child)

    visit(plan[0]["Plan"])
    return scans
