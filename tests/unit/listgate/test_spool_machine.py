"""A model of the spool: whatever the order of posts, bans, archiver rounds and aborted batches,
each 250 "stored" ends archived exactly once (other bytes under its Message-ID as a variant) or
in the not-posted queue with its reason."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import event, select

from gateway.handler import GatewayHandler
from listgate import lists
from listgate.archiver import Archiver
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import Ban, Message, MessageVariant, NotPosted
from listgate.schema import upgrade
from tests.support.config import from_template, make_settings
from tests.support.gateway import through_hooks

SENDERS = ("ann@example.org", "bob@example.org")
# bytes of spooled mail an archiving batch may take: the posts below are ~75 to ~290 bytes, so
# batches of up to 3 are cut at 1, 2 or 3 by their sizes
BUDGET = 400


class SpoolMachine(RuleBasedStateMachine):
    """The model: which Message-IDs were answered
    "stored", which are archived, which are pending.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-machine-"))
        self.settings = make_settings(self.dir).with_(archiver_batch_bytes=BUDGET)
        from_template(self.settings)  # a copy of the migrated database, not 19 migrations each
        self.engine = make_engine(self.settings)
        upgrade(self.engine)
        self.db = session_factory(writer(self.engine))
        with transaction(self.db) as s:
            self.list_id = lists.create(s, "dev").id
        self.handler = GatewayHandler(self.settings, self.db)
        self.archiver = Archiver(self.settings, self.db, batch=3)
        self.abort_at = 0  # > 0: the next archiver transaction dies at its nth message
        event.listen(self.engine, "before_cursor_execute", self._fault)
        # every answer spools a row: (message-id, sender, its raw bytes' size: 0 if counts alone)
        self.pending: list[tuple[str, str, int]] = []
        self.archived: dict[
            str, set[str]
        ] = {}  # Message-ID -> the senders whose bytes are archived (message, variants)
        self.not_posted: list[str] = []
        self.banned: set[str] = set()
        self.seen = 0
        self.fired = 0

    def _fault(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.abort_at and statement.startswith("INSERT INTO messages"):
            self.seen += 1
            if self.seen == self.abort_at:
                self.abort_at, self.seen = 0, 0
                self.fired += 1
                # SQLITE_FULL: the whole transaction is gone
                conn.connection.dbapi_connection.rollback()
                raise sqlite3.OperationalError("database or disk is full")

    @rule(n=st.integers(0, 7), sender=st.sampled_from(SENDERS))
    def post(self, n: int, sender: str) -> None:
        msgid = f"m{n}@x"
        raw = (
            f"From: {sender}\r\nSubject: s{n}\r\nMessage-ID: <{msgid}>\r\n\r\nbody {n}"
            f"{'.' * 30 * n}\r\n".encode()
        )
        reply = through_hooks(self.handler, raw, sender, ["dev@lists.test"])
        if sender in self.banned:
            assert reply.startswith("550 5.7.1"), reply
        elif sender in self.archived.get(msgid, ()):
            assert reply.endswith("already archived, not stored twice"), reply
        elif msgid in self.archived:  # other bytes (another From) under an archived Message-ID
            assert reply.endswith("stored beside the archived message with the same Message-ID"), (
                reply
            )
        else:
            assert reply.endswith("stored"), reply
        spooled = reply.endswith(("stored", "same Message-ID"))
        # a refusal or a duplicate spools only its counts
        self.pending.append((msgid, sender, len(raw) if spooled else 0))

    @rule(sender=st.sampled_from(SENDERS))
    def ban(self, sender: str) -> None:
        if sender not in self.banned:
            with transaction(self.db) as s:
                s.add(Ban(list_id=self.list_id, address=sender))
            self.banned.add(sender)

    @rule(abort_at=st.sampled_from([0, 1, 1, 2, 3]))
    def archive_round(self, abort_at: int) -> None:
        """One archiver round; with abort_at, its
        transaction dies (SQLITE_FULL) at that message row.
        """
        before, fired = len(self.pending), self.fired
        self.abort_at, self.seen = abort_at, 0
        self.archiver.pause = 0.0
        taken = self.archiver.archive_once()
        self.abort_at = 0
        if self.fired > fired:
            assert taken == 0, "an aborted batch archives nothing"
        else:
            done, self.pending = self.pending[:taken], self.pending[taken:]
            held = sum(size for _, _, size in done)
            assert taken <= 1 or held <= BUDGET, f"a batch of {taken} held {held} bytes"
            for msgid, sender, spooled in done:
                if not spooled:
                    continue
                if sender in self.banned:
                    self.not_posted.append(msgid)
                else:
                    # the message, a variant, or (the same bytes spooled twice before archiving)
                    # nothing new
                    self.archived.setdefault(msgid, set()).add(sender)
        assert taken <= before

    @invariant()
    def rows_agree_with_the_model(self) -> None:
        with self.db() as s:
            stored = list(s.scalars(select(Message.message_id)))
            variants = len(s.scalars(select(MessageVariant.id)).all())
            not_posted = list(s.scalars(select(NotPosted.message_id).order_by(NotPosted.id)))
            mark = self.archiver.spool.mark(s)
        waiting = [
            r.message_id for r in self.archiver.spool.pending(1000, after=mark) if r.rcpt_tos
        ]
        assert len(stored) == len(set(stored)), "a message archived twice"
        assert set(stored) == set(self.archived)
        assert variants == sum(len(senders) - 1 for senders in self.archived.values())
        assert waiting == [m for m, _, size in self.pending if size]
        assert not_posted == self.not_posted

    def teardown(self) -> None:
        self.archiver.spool.close()
        self.handler.spool.close()
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)


SpoolMachine.TestCase.settings = hyp_settings(
    max_examples=25, stateful_step_count=25, deadline=None
)
test_spool_model = pytest.mark.long(45)(SpoolMachine.TestCase)
