"""A model of the notices in the outbox: whatever the broker does with their tasks (runs them,
loses them, runs them twice or late), whatever the relay answers and wherever a worker dies, each
notice reaches its reader once, except in the duplicate window the code names.

The worker's own functions run in-process (worker.outbox.send_notice, sweep_outbox,
recover_stale) on a real SQLite database; the relay sits behind the embedded MaildirWave and
answers each reader as the rules chose: 250, 451 (deferred), 550 (refused for good: the notice
fails), "drop" (the connection lost after the final dot: the relay has it, the worker never heard
250), or the worker dies (an exception out of the send, before the relay took it or after).
The clock worker.outbox reads stands still and moves only when a rule says so.

The duplicate window (docs/worker.md, "Exactly once"): a worker that dies after the relay took
the notice and before the commit around its final dot, or a connection lost after the dot,
sends it again: one extra copy each time. Nothing else may make a second copy, and after the
drain (every answer 250, the beat's recovery and sweeps, every task run) every notice not refused
has reached its reader.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from listgate import dispatch
from listgate.db import transaction
from listgate.models import OutboxEntry
from tests.support.config import make_settings, migrated
from tests.support.searches import settings_for
from worker import delivery, outbox, relay_sessions
from worker.context import WorkerContext
from worker.mailer import DEFERRED, DOT, RCPT, SENT, MaildirConnection, SendResult, classify

READERS = tuple(f"reader{i}@example.org" for i in range(3))
ANSWERS = ("250", "250", "451", "550", "drop", "before", "after")


class WorkerDied(BaseException):
    """The worker process is killed: nothing of it runs on (not an Exception: nobody catches it)."""


class Broker:
    """The task messages sent and not yet delivered (Celery's send_task)."""

    def __init__(self) -> None:
        self.messages: list[int] = []

    def send_task(self, name: str, args: Any = (), **kwargs: Any) -> None:
        assert name == dispatch.SEND_NOTICE
        self.messages.append(args[0])


class Relay(MaildirConnection):
    """Answers each reader as the rules chose; counts the notices it took."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.copies: Counter[str] = Counter()
        self.windows: Counter[str] = (
            Counter()
        )  # duplicate windows each reader's notice went through

    def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult:
        answer = self.answers.get(rcpt, "250")
        if answer == "before":
            raise WorkerDied(f"killed before the relay took the notice for {rcpt}")
        if answer == "550":
            return classify(550, "5.1.1 user unknown", RCPT)
        if answer == "451":
            return classify(451, "4.3.0 try again later", RCPT)
        self.copies[rcpt] += 1
        if answer == "after":
            self.windows[rcpt] += 1
            raise WorkerDied(f"killed after the relay took the notice for {rcpt}")
        if answer == "drop":
            self.windows[rcpt] += 1
            return SendResult(DEFERRED, 0, "no reply after the final dot (connection lost)", DOT)
        return SendResult(SENT, 250, "2.0.0 queued", DOT)


class NoticeMachine(RuleBasedStateMachine):
    """The outbox's notices, the broker and the relay, against what each reader got."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="notice-machine-"))
        settings = make_settings(self.dir, LISTGATE_OUTBOUND=f"maildir:{self.dir / 'out'}")
        self.db = migrated(settings)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.mp = pytest.MonkeyPatch()
        clock = self

        class Clock(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return clock.now

        self.mp.setattr(outbox, "datetime", Clock)
        self.mp.setattr(dispatch, "datetime", Clock)
        self.relay = Relay()

        @contextmanager
        def connect(outbound: str, *args: Any, **kwargs: Any) -> Any:
            yield relay_sessions.MaildirWave(self.relay, 1)

        self.mp.setattr(relay_sessions, "connect", connect)
        self.broker = Broker()
        self.ctx = WorkerContext(settings, sender=self.broker)
        self.recorded: list[str] = []
        self.refused: set[str] = set()  # readers whose relay refused a run of their notice

    @initialize()
    def record(self) -> None:
        """One notice to each reader (a goodbye), queued as the web or a command queues it."""
        with transaction(self.db) as session:
            entries = [
                dispatch.record(
                    session,
                    dispatch.SEND_NOTICE,
                    0,
                    {"template": "goodbye", "list": "dev", "to": r},
                )
                for r in READERS
            ]
        self.recorded = list(READERS)
        self.ctx.enqueue(entries)

    @rule(data=st.data(), answer=st.sampled_from(ANSWERS))
    def run_a_task(self, data: st.DataObject, answer: str) -> None:
        """A worker runs a task; the relay answers its reader `answer` (or the worker dies)."""
        if not self.broker.messages:
            return
        i = data.draw(st.integers(0, len(self.broker.messages) - 1))
        entry_id = self.broker.messages.pop(i)
        to = self._reader(entry_id)
        self.relay.answers[to] = answer
        if answer == "550":
            self.refused.add(to)
        with suppress(WorkerDied):
            outbox.send_notice(self.ctx, entry_id)

    @rule(data=st.data(), twice=st.booleans())
    def broker_loses_or_repeats(self, data: st.DataObject, twice: bool) -> None:
        if not self.broker.messages:
            return
        i = data.draw(st.integers(0, len(self.broker.messages) - 1))
        if twice:
            self.broker.messages.append(self.broker.messages[i])
        else:
            self.broker.messages.pop(i)

    @rule(seconds=st.sampled_from((1, 61, 301, 3601)))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def beat_recovers(self) -> None:
        outbox.recover_stale(self.ctx, delivery.STALE_AFTER)

    @rule()
    def beat_sweeps(self) -> None:
        outbox.sweep_outbox(self.ctx)

    @invariant()
    def nobody_gets_a_notice_twice_outside_the_window(self) -> None:
        for reader, copies in self.relay.copies.items():
            assert copies <= 1 + self.relay.windows[reader], f"{reader}'s notices"

    def drain(self) -> None:
        """The relay answers 250; the beat's jobs and every task run until nothing is left."""
        self.relay.answers.clear()
        for _ in range(10):
            self.now += timedelta(hours=2)
            outbox.recover_stale(self.ctx, delivery.STALE_AFTER)
            outbox.sweep_outbox(self.ctx)
            while self.broker.messages:
                outbox.send_notice(self.ctx, self.broker.messages.pop())
        with self.db() as session:
            entries = session.scalars(select(OutboxEntry)).all()
            assert [e.id for e in entries if e.done_at is None] == [], "notices never done"
            failed = {self._to(e.payload) for e in entries if e.failed_at is not None}
        assert failed <= self.refused, "only a notice the relay refused fails"
        for reader in self.recorded:
            if reader not in failed:
                assert self.relay.copies[reader] >= 1, f"{reader}'s notice never came"
        self.nobody_gets_a_notice_twice_outside_the_window()

    def _reader(self, entry_id: int) -> str:
        with self.db() as session:
            return self._to(session.get_one(OutboxEntry, entry_id).payload)

    @staticmethod
    def _to(payload: str) -> str:
        return str(json.loads(payload)["to"])

    def teardown(self) -> None:
        try:
            self.drain()
        finally:
            self.mp.undo()
            self.ctx.dispose()
            shutil.rmtree(self.dir, ignore_errors=True)


def test_every_notice_reaches_its_reader_once_whatever_the_broker_relay_and_kills_do() -> None:
    run_state_machine_as_test(NoticeMachine, settings=settings_for(25, 30))


def test_a_notice_whose_worker_died_before_the_relay_took_it_comes_after_the_beat() -> None:
    """Pinned: the worker dies before the relay took the first reader's notice, the second's is
    taken and the worker dies before its commit (one extra copy allowed), the third is deferred."""
    machine = NoticeMachine()
    machine.record()
    for answer in ("before", "after", "451"):
        machine.run_a_task(_First(), answer)
    assert machine.relay.copies == Counter({READERS[1]: 1})
    machine.teardown()  # the drain: recovery, sweeps, every task; each reader has theirs
    assert machine.relay.copies == Counter({READERS[0]: 1, READERS[1]: 2, READERS[2]: 1})


class _First:
    """A stand-in for hypothesis's data: always the first task in the broker."""

    def draw(self, strategy: object) -> int:
        return 0
