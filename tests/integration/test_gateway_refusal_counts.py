"""A flood of refusals does not starve the gateway's executor while their counts wait for the
group writer.

Each refusal before DATA is counted through the writer's group commit. The writer is held here
(as a slow disk or a long batch would hold it) while clients are refused, more of them than the
gateway has executor threads; a legitimate post must still have its RCPT looked up and answered,
and once the writer goes on, be stored, with every refusal counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.answers import Job, Result
from gateway.handler import GatewayHandler
from gateway.server import GatewayServer
from listgate import counters
from listgate.archiver import Archiver
from listgate.db import session_factory, writer
from tests.support.gateway import Env, RawClient, archived_ids, mail

pytestmark = pytest.mark.integration
WORKERS = 2  # the gateway's executor threads
FLOOD = WORKERS + 2  # refusals waiting for their count at once
ANSWER_WAIT = 20.0  # seconds a client waits for a reply that needs no writer


class HeldWriter:
    """Holds every batch of the writer until released; counts the jobs that reached it."""

    def __init__(self, handler: GatewayHandler, server: GatewayServer) -> None:
        self.answer, self.server = handler.answer, server
        self.release = threading.Event()
        self.seen = 0
        self.clients: list[RawClient] = []  # the test's connections, closed at teardown
        handler.answer = self  # type: ignore[assignment]

    def __call__(self, jobs: list[Job]) -> list[Result]:
        self.seen += len(jobs)
        self.release.wait(60)
        return self.answer(jobs)

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
    # Every executor thread could be taken by now: at least WORKERS counts wait for the writer.
    wait_for(lambda: held.reached() >= WORKERS, "the refusals' counts to reach the writer")

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
    wait_for(lambda: held.reached() >= FLOOD + 1, "every count and the post to reach the writer")

    held.release.set()
    assert post.reply().startswith("250"), "the post was not accepted"
    if flood == "unknown-list":
        for c in flooders:
            assert c.reply().startswith("550 5.1.1"), "a refused RCPT got another answer"
    Archiver(env.settings, db, enqueue=lambda _: 0).drain()
    assert archived_ids(db) == ["during-flood@x"]
    with db() as s:
        assert counters.values(s, counters.REFUSED) == {flood: FLOOD}
