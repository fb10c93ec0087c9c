"""A session to the outbound relay that fails after the connection is made (EHLO refused, login
refused) closes its socket, in the gateway's size probe and in the worker's sender alike: the
relay sees the connection end at once, and nothing is left for the garbage collector to find."""

from __future__ import annotations

import gc
import socketserver
import threading
import warnings
from collections.abc import Iterator

import pytest

from listgate.outbound import advertised_size
from worker.relay_sessions import Outgoing, connect, wire_form


class Relay(socketserver.ThreadingTCPServer):
    """Greets, then answers every command with the reply it was given; notes when a client's
    connection ends."""

    daemon_threads = True

    def __init__(self, replies: dict[bytes, bytes]) -> None:
        self.replies = replies
        self.ended = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"smtp://user:secret@127.0.0.1:{self.server_address[1]}"


class Handler(socketserver.StreamRequestHandler):
    server: Relay

    def handle(self) -> None:
        self.wfile.write(b"220 relay ESMTP\r\n")
        for line in self.rfile:
            verb = line[:4].upper()
            self.wfile.write(self.server.replies.get(verb, b"250 ok\r\n"))
            if verb == b"QUIT":
                break
        self.server.ended.set()


@pytest.fixture
def relay(request: pytest.FixtureRequest) -> Iterator[Relay]:
    server = Relay(request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


SHUTTING_DOWN = {b"EHLO": b"421 going down\r\n", b"HELO": b"421 going down\r\n"}
NO_LOGIN = {
    b"EHLO": b"250-relay\r\n250-SIZE 1000\r\n250 AUTH PLAIN\r\n",
    b"AUTH": b"535 5.7.8 bad credentials\r\n",
}


def unclosed_sockets(call: object) -> list[str]:
    """The ResourceWarnings raised while call runs and its garbage is collected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert callable(call)
        call()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("relay", [SHUTTING_DOWN, NO_LOGIN], indirect=True, ids=["ehlo", "auth"])
def test_the_size_probe_closes_a_session_that_failed(relay: Relay) -> None:
    answers: list[int | None] = []
    assert unclosed_sockets(lambda: answers.append(advertised_size(relay.url))) == []
    assert answers == [None]
    assert relay.ended.wait(5)


@pytest.mark.parametrize("relay", [SHUTTING_DOWN, NO_LOGIN], indirect=True, ids=["ehlo", "auth"])
def test_the_sender_closes_a_session_that_failed_and_defers(relay: Relay) -> None:
    results = []
    item = Outgoing("list@lists.test", "a@x.org", wire_form(b"x"))

    def send() -> None:
        with connect(relay.url, size=1, timeout=5) as out:
            results.extend(out.send([item], lambda live, dots: dots(set(live))))

    assert unclosed_sockets(send) == []
    assert [r.status for r in results] == ["deferred"]
    assert relay.ended.wait(5)
