"""One `listgate up` per test process, shared by the journeys that need only their own lists
(fixtures `up_stack` and `sink`, registered for tests/integration by its conftest.py).

A test module shares by naming the settings its stack runs with: SHARED_STACK = {} for the
embedded default, or e.g. {"LISTGATE_BOUNCE_SCORE_LIMIT": "2"}; the modules naming the same
settings share a stack. In a module without SHARED_STACK, `sink` is a sink of the test's own.
Tests on a shared stack run one after another (one test process each), so each one has:
- its own lists: Journey names them through Stack.list_name ("dev", then "dev2", ...), and after
  the test they are deleted with their archive (`listgate lists delete --purge`);
- its own view of the sink (`sink`): only the mail that arrived since the test began, and
  Quiet counts only the mail recorded as sent since then;
- its own people: once the site is quiet again, the per-address rows no list owns (people,
  automatic replies, rate-limit hits) are deleted, so an address is new to each test.
After each test the stack's processes must be alive: a dead one fails that test with the logs,
and the next test gets a new stack. Tests that kill or restart processes, set other settings
per test or need their own database keep a stack of their own (tests.support.stack).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from listgate import administration, lists
from listgate.config import Settings
from listgate.db import make_engine, session_factory, transaction, writer
from listgate.models import AutoReply, MailingList, Person, RateHit
from tests.support.config import free_port
from tests.support.quiet import Quiet, reader, recorded_sends
from tests.support.sink import Received, SmtpSink, running_sink
from tests.support.stack import Stack, base_env, make_stack, run_up

AUTO_REPLY_WINDOW = 1.0  # seconds: the journeys' LISTGATE_AUTO_REPLY_WINDOW
QUIET_TIMEOUT = 60.0
KEPT = 2  # stacks of different settings kept running per test process (the least used stops)


def journey_env(tmp_path: Path, sink: SmtpSink, **extra: str) -> dict[str, str]:
    """A journey's environment: one automatic reply per second (Journey.mail keeps the steps
    answered by mail that apart)."""
    return base_env(tmp_path, sink, LISTGATE_AUTO_REPLY_WINDOW=str(int(AUTO_REPLY_WINDOW)), **extra)


class SinkView(SmtpSink):
    """The shared sink as one test sees it: the mail that arrived since the view was made."""

    def __init__(self, whole: SmtpSink, recorded_before: int) -> None:
        self.port, self.handler, self.controller = whole.port, whole.handler, whole.controller
        self.whole = whole
        self.first = len(whole.received)
        self.recorded_before = recorded_before

    @property
    def received(self) -> list[Received]:
        """What arrived since the view was made."""
        return self.whole.received[self.first :]

    def start(self) -> None:
        raise AssertionError("the shared sink runs as long as its stack")

    def stop(self) -> None:
        raise AssertionError("the shared sink runs as long as its stack")


@dataclass
class Shared:
    """A running shared stack, its sink, and the generator that stops it."""

    stack: Stack
    sink: SmtpSink
    runner: Iterator[Stack]

    def close(self) -> None:
        for _ in self.runner:  # run_up's `finally` stops the processes
            pass
        self.sink.stop()


class Stacks:
    """The shared stacks of one test process, by settings."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.running: dict[tuple[tuple[str, str], ...], Shared] = {}

    def get(self, settings: dict[str, str]) -> Shared:
        key = tuple(sorted(settings.items()))
        shared = self.running.pop(key, None)
        if shared is None:
            while len(self.running) >= KEPT:
                self.running.pop(next(iter(self.running))).close()
            shared = self._start(settings)
        self.running[key] = shared  # the most recently used last
        return shared

    def discard(self, shared: Shared) -> None:
        for key, running in list(self.running.items()):
            if running is shared:
                del self.running[key]
        shared.close()

    def close(self) -> None:
        while self.running:
            self.running.popitem()[1].close()

    def _start(self, settings: dict[str, str]) -> Shared:
        tmp = self.factory.mktemp("shared-stack")
        sink = SmtpSink(port=free_port())
        sink.start()
        runner = run_up(make_stack(tmp, journey_env(tmp, sink, **settings)))
        try:
            stack = next(runner)
        except BaseException:
            sink.stop()
            raise
        return Shared(stack, sink, runner)


@pytest.fixture(scope="session")
def shared_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """The shared stacks of this test process; stopped at its end."""
    stacks = Stacks(tmp_path_factory)
    yield stacks
    stacks.close()


@dataclass
class Site:
    """A shared stack as one test has it."""

    stack: Stack
    sink: SinkView


@pytest.fixture
def shared_site(request: pytest.FixtureRequest, shared_stacks: Stacks) -> Iterator[Site]:
    """A live shared stack for this test (with the SHARED_STACK settings of its module), given
    back clean: its lists deleted, the site quiet, the per-address rows gone."""
    shared = shared_stacks.get(dict(getattr(request.module, "SHARED_STACK", {})))
    stack = shared.stack
    stack.check_alive()
    before = list_names(stack.env)
    yield Site(stack, SinkView(shared.sink, recorded_sends_of(stack.env)))
    dead = {name: p.returncode for name, p in stack.procs.items() if p.poll() is not None}
    if dead:
        logs = stack.log_tail()
        shared_stacks.discard(shared)
        pytest.fail(f"the shared stack's processes exited: {dead}\n{logs}", pytrace=False)
    try:
        clean(stack, shared.sink, before)
    except BaseException:
        shared_stacks.discard(shared)  # the next test gets a new stack
        raise


@pytest.fixture
def up_stack(shared_site: Site) -> Stack:
    """The shared `listgate up` (embedded default) for this test."""
    return shared_site.stack


@pytest.fixture
def sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    """In a module with SHARED_STACK the shared stack's sink as this test sees it (empty at its
    start); elsewhere a sink of the test's own (tests.support.sink)."""
    if hasattr(request.module, "SHARED_STACK"):
        site = request.getfixturevalue("shared_site")
        assert isinstance(site, Site)
        yield site.sink
    else:
        yield from running_sink()


def clean(stack: Stack, sink: SmtpSink, before: set[str]) -> None:
    """After a test: no scripted relay answers left, its lists deleted with their archive (as
    `listgate lists delete --purge` does), the site quiet, and no per-address rows (so the next
    test's people are new to the site)."""
    with sink.handler.lock:
        sink.handler.scripted.clear()
        sink.handler.refused_rcpts = {}  # a test may have put a dict of another kind
    # the product's writer: BEGIN IMMEDIATE on SQLite waits for the stack's own writers (a
    # deferred transaction that reads, then writes, is refused at once: "database is locked")
    engine = writer(make_engine(Settings.from_env(stack.env)))
    try:
        for name in sorted(list_names(stack.env) - before):
            with transaction(session_factory(engine)) as session:
                administration.delete_list(
                    session, lists.require(session, name), "the test's end", purge=True
                )
        wait_quiet(stack, sink)
        with transaction(session_factory(engine)) as session:
            for table in (Person, AutoReply, RateHit):
                session.execute(delete(table))
    finally:
        engine.dispose()


def wait_quiet(stack: Stack, sink: SmtpSink) -> None:
    """Until the site has nothing left to send now (twice in a row); a failure with the logs."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    with Quiet(stack.env, sink) as quiet:
        while True:
            busy = quiet.busy()
            if not busy:
                time.sleep(0.2)
                busy = quiet.busy()
                if not busy:
                    return
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the shared stack is still busy after the test: {'; '.join(busy)}\n"
                    f"{stack.log_tail(15)}",
                    pytrace=False,
                )
            time.sleep(0.05)


def list_names(env: dict[str, str]) -> set[str]:
    """The names of the site's lists, read from its database."""
    engine = reader(Settings.from_env(env))
    try:
        with session_factory(engine)() as session:
            return set(session.scalars(select(MailingList.name)).all())
    finally:
        engine.dispose()


def recorded_sends_of(env: dict[str, str]) -> int:
    """The mails the site's database counts as sent now (tests.support.quiet)."""
    engine = reader(Settings.from_env(env))
    try:
        with session_factory(engine)() as session:
            return recorded_sends(session)
    finally:
        engine.dispose()
