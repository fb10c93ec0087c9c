"""A flood of refusals does not starve the gateway while their counts wait for the group writer.

Each refusal is counted through the writer's group commit. The writer is held here (as a slow
disk or a long batch would hold it) while clients are refused: more of them than the gateway has
executor threads, or the same refused command thousands of times; a legitimate post must still
be answered, and once the writer goes on, be stored, with every refusal counted exactly once,
also when the gateway stops while counts still wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.answers import Begun, Job, Result
from gateway.handler import GatewayHandler
from gateway.server import GatewayServer
from listgate import counters
from listgate.archiver import Archiver
from listgate.db import session_factory, writer
from listgate.spool import Spooled
from tests.support.gateway import Env, RawClient, archived_ids, mail

pytestmark = pytest.mark.integration
WORKERS = 2  # the gateway's executor threads
FLOOD = WORKERS + 2  # refusals waiting for their count at once
ANSWER_WAIT = 20.0  # seconds a client waits for a reply that needs no writer
REPEATS = 1500  # refused MAILs per client in a repeated flood, before the post and after it
PIPELINED = 100  # commands a flooding client sends before reading their replies
SPARE = 3  # tasks and writer jobs a repeated flood may keep beside the connections' own


class HeldWriter:
    """Holds every batch of the writer until released; counts the jobs that reached it."""

    def __init__(self, handler: GatewayHandler, server: GatewayServer) -> None:
        self.answer, self.server = handler.answer, server
        self.release = threading.Event()
        self.seen = 0
        self.count_jobs: list[int] = []  # of each job of counts only: how many counts it carries
        self.clients: list[RawClient] = []  # the test's connections, closed at teardown
        handler.answer = self  # type: ignore[assignment]  # a double wrapping the handler's Answerer

    def __call__(self, jobs: list[Job]) -> list[Result]:
        return self.finish(self.begin(jobs)[1])

    def begin(self, jobs: list[Job], behind: Begun | None = None) -> tuple[list[Result], Begun]:
        self.seen += len(jobs)
        self.count_jobs += [len(j.counts) for j in jobs if isinstance(j, Spooled) and not j.raw]
        self.release.wait(60)
        return self.answer.begin(jobs, behind)

    def finish(self, begun: Begun) -> list[Result]:
        return self.answer.finish(begun)

    def reached(self) -> int:
        """Jobs handed to the writer so far: in its held batch, or queued behind it."""
        return self.seen + self.server.writer._queue.qsize()


@pytest.fixture
def gateway(
    tmp_path: Path,
) -> Iterator[tuple[Env, sessionmaker[Session], GatewayServer, HeldWriter]]:
    """The open list dev@lists.test and a gateway with WORKERS executor threads, writer held."""
    env = Env(tmp_path, LISTGATE_MAX_MESSAGES_PER_MINUTE="100000")
    env.make_list("dev")
    db = session_factory(writer(env.engine))
    handler = GatewayHandler(env.settings, db)
    server = GatewayServer(env.settings, handler, workers=WORKERS)
    server.start()
    held = HeldWriter(handler, server)
    try:
        yield env, db, server, held
    finally:
        held.release.set()
        for c in held.clients:
            c.close()
        server.stop()
        handler.spool.close()
        env.engine.dispose()


def unknown_list(port: int) -> RawClient:
    """A client whose RCPT to a list that does not exist is sent (its reply not read yet)."""
    c = RawClient(port)
    c.cmd("EHLO flood.example")
    assert c.cmd("MAIL FROM:<flood@example.org>").startswith("250")
    c.send(b"RCPT TO:<nope@lists.test>\r\n")
    return c


def too_big(port: int) -> RawClient:
    """A client that declared, FLOOD times, a message over the size limit (refused by aiosmtpd)."""
    c = RawClient(port)
    c.cmd("EHLO flood.example")
    for _ in range(FLOOD):
        assert c.cmd("MAIL FROM:<flood@example.org> SIZE=99999999999").startswith("552 5.3.4")
    return c


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll condition() for up to ANSWER_WAIT seconds."""
    deadline = time.monotonic() + ANSWER_WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("flood", ["unknown-list", "too-big"])
def test_a_post_is_answered_while_a_flood_of_refusals_waits_for_the_writer(
    gateway: tuple[Env, sessionmaker[Session], GatewayServer, HeldWriter], flood: str
) -> None:
    env, db, _server, held = gateway
    port = env.settings.smtp_port
    if flood == "unknown-list":
        flooders = [unknown_list(port) for _ in range(FLOOD)]
    else:
        flooders = [too_big(port)]
    held.clients.extend(flooders)
    # A refusal the client waits for is a job of its own; aiosmtpd's own wait in one job at a time.
    jobs = FLOOD if flood == "unknown-list" else 1
    # Every executor thread could be taken by now: the counts wait for the writer.
    wait_for(
        lambda: held.reached() >= min(jobs, WORKERS), "the refusals' counts to reach the writer"
    )

    post = RawClient(port)
    held.clients.append(post)
    post.sock.settimeout(ANSWER_WAIT)
    post.cmd("EHLO post.example")
    assert post.cmd("MAIL FROM:<ann@example.org>").startswith("250")
    try:
        rcpt = post.cmd("RCPT TO:<dev@lists.test>")  # the list is looked up in the executor
    except TimeoutError:
        pytest.fail(
            f"the post's RCPT got no answer within {ANSWER_WAIT:.0f}s: {held.reached()} refusal "
            f"counts waiting for the writer hold the gateway's {WORKERS} executor threads",
            pytrace=False,
        )
    assert rcpt.startswith("250"), rcpt
    assert post.cmd("DATA").startswith("354")
    post.send(mail(msgid="during-flood@x") + b".\r\n")
    wait_for(lambda: held.reached() >= jobs + 1, "the counts and the post to reach the writer")

    held.release.set()
    assert post.reply().startswith("250"), "the post was not accepted"
    if flood == "unknown-list":
        for c in flooders:
            assert c.reply().startswith("550 5.1.1"), "a refused RCPT got another answer"
    assert counted(env, db, FLOOD) == {flood: FLOOD}
    assert archived_ids(db) == ["during-flood@x"]


def refuse_mail(c: RawClient, times: int) -> None:
    """Declare a message over the size limit `times` times, pipelined; each must get its 552."""
    for start in range(0, times, PIPELINED):
        n = min(PIPELINED, times - start)
        c.send(b"MAIL FROM:<flood@example.org> SIZE=999999999999\r\n" * n)
        for _ in range(n):
            reply = c.reply()
            assert reply.startswith("552 5.3.4"), reply


def loop_tasks(server: GatewayServer) -> int:
    """Tasks alive on the listener's event loop: one per connection, and what the gateway added."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1  # not this one

    assert server.controller is not None
    loop = server.controller.loop
    return asyncio.run_coroutine_threadsafe(count(), loop).result(ANSWER_WAIT)


def flood(clients: list[RawClient], times: int) -> None:
    """Each client refused `times` times, all at once (one thread each)."""
    threads = [threading.Thread(target=refuse_mail, args=(c, times)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def flooders(held: HeldWriter, port: int, n: int) -> list[RawClient]:
    """n connected clients, closed at teardown."""
    clients = [RawClient(port) for _ in range(n)]
    held.clients.extend(clients)
    for c in clients:
        assert c.cmd("EHLO flood.example").startswith("250")
    return clients


def counted(env: Env, db: sessionmaker[Session], made: int) -> dict[str, int]:
    """The refusal counters once at least `made` refusals were archived (or ANSWER_WAIT passed)."""
    archiver = Archiver(env.settings, db, enqueue=lambda _: 0)
    deadline = time.monotonic() + ANSWER_WAIT
    while True:
        archiver.drain()
        with db() as s:
            values = counters.values(s, counters.REFUSED)
        if sum(values.values()) >= made or time.monotonic() > deadline:
            return values
        time.sleep(0.05)


def test_a_repeated_refusal_costs_a_count_not_a_task_and_a_write_each(
    gateway: tuple[Env, sessionmaker[Session], GatewayServer, HeldWriter],
) -> None:
    env, db, server, held = gateway
    clients = flooders(held, env.settings.smtp_port, 3)
    flood(clients, REPEATS)
    post = RawClient(env.settings.smtp_port)
    held.clients.append(post)
    post.cmd("EHLO post.example")
    assert post.cmd("MAIL FROM:<ann@example.org>").startswith("250")
    assert post.cmd("RCPT TO:<dev@lists.test>").startswith("250")
    assert post.cmd("DATA").startswith("354")
    post.send(mail(msgid="amid-repeats@x") + b".\r\n")
    wait_for(lambda: held.reached() >= 2, "the post to reach the writer behind a count")
    flood(clients, REPEATS)
    made = 2 * REPEATS * len(clients)

    extra_tasks = loop_tasks(server) - len(clients) - 1
    jobs = held.reached()
    assert extra_tasks <= SPARE and jobs <= SPARE + 1, (
        f"after {made} refusals with the writer held: {extra_tasks} tasks beside the "
        f"connections' on the loop, {jobs} jobs handed to the writer (the post is one)"
    )

    held.release.set()
    assert post.reply().startswith("250"), "the post was not accepted"
    assert counted(env, db, made) == {"too-big": made}
    # thousands of refusals, in jobs of one count per counter (their size: not one per refusal)
    assert held.count_jobs and max(held.count_jobs) == 1, held.count_jobs
    assert archived_ids(db) == ["amid-repeats@x"]
    flood(clients[:1], 1)  # and the next refusal, once the flood is over, is counted too
    assert counted(env, db, made + 1) == {"too-big": made + 1}


def test_counts_still_waiting_when_the_gateway_stops_are_written_and_found_after_a_restart(
    gateway: tuple[Env, sessionmaker[Session], GatewayServer, HeldWriter],
) -> None:
    env, db, server, held = gateway
    port = env.settings.smtp_port
    flood(flooders(held, port, 2), REPEATS)
    made = 2 * REPEATS
    stopping = threading.Thread(target=server.stop)
    stopping.start()  # the listener stops first; the writer, still held, then writes what waits
    wait_for(lambda: server.controller is None, "the listener to stop")
    held.release.set()
    stopping.join(ANSWER_WAIT)
    assert not stopping.is_alive(), "the gateway did not stop"

    handler = GatewayHandler(env.settings, db)
    again = GatewayServer(env.settings, handler, workers=WORKERS)
    again.start()
    try:
        assert counted(env, db, made) == {"too-big": made}
        later = RawClient(port)
        held.clients.append(later)
        later.cmd("EHLO later.example")
        refuse_mail(later, 1)
        assert counted(env, db, made + 1) == {"too-big": made + 1}
    finally:
        again.stop()
        handler.spool.close()
