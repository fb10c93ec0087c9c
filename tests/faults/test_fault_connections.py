"""Many connections from many addresses, idle or slow: the gateway's own limit, not its fds or RAM.

The attack: hundreds of connections spread over 250 loopback source addresses in 250 networks
(under the limits per client and per network), held open idle or sending a command a byte at a
time. Without a gateway-wide limit each is served, costing the gateway a file descriptor and its
buffers, until accept() fails with EMFILE. Here the connections over LISTGATE_MAX_CONNECTIONS must
get 421 at once and be closed, the gateway's fds and memory must stay bounded, and once the attack
ends a real client's post must get 250 and be stored; with fewer fds than connections allowed (a
low `ulimit -n`), the listener must survive EMFILE and serve again once fds are free.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.limits import CONNECTION_COST, RESERVED_FDS
from listgate import counters
from tests.support.config import prepare, site_env
from tests.support.gateway import RawClient, archived_ids
from tests.support.memory import MB, reset_peak, settle, status
from tests.support.processes import Service, gateway
from tests.support.reliability import post, post_code, record, size

pytestmark = [pytest.mark.integration, pytest.mark.soak]
FULL = "421 4.7.0 Too many connections, try again later"
BATCH = 50
HOLD = 5  # seconds the gateway stays out of fds
UNENDED = b"EHLO " + b"x" * 15000
SLACK = 24 * MB  # the interpreter's own noise between two measurements


def _sources(n: int) -> list[str]:
    """n loopback source addresses, 127.0.1.2 to 127.0.250.2 in turn: each in a network of its own
    (a /24), so the gateway's limit is what refuses them, not one network's share of it; the
    client posts from 127.0.0.1."""
    return [f"127.0.{1 + i % 250}.2" for i in range(n)]


class Crowd:
    """Connections from 250 addresses, BATCH at once (within the listen queue: the kernel would drop
    the others' SYNs and they would connect only after it retries), half idle after the greeting,
    half sending a command of 15 KB that never ends (the gateway's reader holds it)."""

    def __init__(self, port: int, n: int, wait: float = 10.0) -> None:
        self.socks: list[socket.socket] = []
        self.greetings: list[str] = []
        sources = _sources(n)
        for start in range(0, n, BATCH):
            batch = []
            for source in sources[start : start + BATCH]:
                sock = socket.socket()
                sock.setblocking(False)
                sock.bind((source, 0))
                sock.connect_ex(("127.0.0.1", port))
                batch.append(sock)
            self.socks += batch
            self.greetings += _greetings(batch, wait)
        for sock, greeting in list(zip(self.socks, self.greetings, strict=True))[1::2]:
            if greeting.startswith("220"):
                sock.settimeout(30)
                sock.sendall(UNENDED)

    def served(self) -> int:
        return sum(g.startswith("220") for g in self.greetings)

    def refused(self) -> list[str]:
        return [g for g in self.greetings if g.startswith("4")]

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def _greetings(socks: list[socket.socket], wait: float) -> list[str]:
    """The first line each server side sends ('<silent>' if none within wait s, '<closed>')."""
    got = [b""] * len(socks)
    done = [False] * len(socks)
    with selectors.DefaultSelector() as sel:
        for i, sock in enumerate(socks):
            sel.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + wait
        while not all(done) and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                i = key.data
                try:
                    chunk = socks[i].recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                got[i] += chunk
                if not chunk or b"\r\n" in got[i]:
                    done[i] = True
                    sel.unregister(socks[i])
    return [
        g.split(b"\r\n", 1)[0].decode(errors="replace") if g else ("<closed>" if d else "<silent>")
        for g, d in zip(got, done, strict=True)
    ]


def _post_soon(port: int, msgid: str, within: float = 20.0) -> int:
    """Post until it gets 250 or `within` seconds pass (the gateway notices closed peers soon)."""
    deadline = time.monotonic() + within
    while True:
        try:
            code = post_code(port, msgid)
        except OSError:
            code = 0
        if code == 250 or time.monotonic() > deadline:
            return code
        time.sleep(0.5)


def _leave(gw: Service, port: int, crowd: Crowd | None) -> int:
    """Close the crowd; the code of a post after it (within seconds), the gateway stopped."""
    if crowd:
        crowd.close()
    try:
        return _post_soon(port, "after@example.org")
    finally:
        gw.stop()


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _start(
    tmp_path: Path, prefix: tuple[str, ...] = (), **extra: str
) -> tuple[Service, int, sessionmaker[Session]]:
    env = site_env(tmp_path, LISTGATE_SMTP_TIMEOUT="3600", **extra)  # the crowd is not timed out
    settings, db = prepare(env, "dev")
    gw = gateway(env, tmp_path / "gateway.log", prefix=prefix).start()
    return gw, settings.smtp_port, db


def test_a_crowd_from_many_addresses_is_refused_over_the_default_limit(tmp_path: Path) -> None:
    budget = 64 * MB  # the default limit follows it: budget / CONNECTION_COST connections
    limit = budget // CONNECTION_COST
    n = size(400, 3000)
    gw, port, db = _start(tmp_path, LISTGATE_MAX_DATA_MEMORY=str(budget))
    crowd = None
    try:
        pid = gw.process.pid
        assert post_code(port, "warm@example.org") == 250
        settle(pid)
        base, base_fds = reset_peak(pid), _fds(pid)
        crowd = Crowd(port, n)
        settle(pid)
        growth, fds = status(pid, "VmHWM") - base, _fds(pid) - base_fds
        during = post_code(port, "during@example.org")
        alive = gw.process.poll() is None
    finally:
        after = _leave(gw, port, crowd)
    served, refused = crowd.served(), crowd.refused()
    record(
        f"{n} idle or slow connections from 250 addresses (limit {limit})",
        n,
        0,
        0,
        None,
        f"{served} served, {len(refused)} got 421; gateway +{growth / MB:.0f} MB, +{fds} fds; "
        f"a post meanwhile: {during}, after: {after}",
        held=n if served <= limit else 0,
    )
    figures = f"gateway +{growth / MB:.0f} MB, +{fds} fds, a post meanwhile got {during}"
    assert alive, "the gateway died under the crowd"
    assert served <= limit, f"{served} of {n} connections were served at once ({figures})"
    assert refused and set(refused) == {FULL}, refused[:5]
    assert served + len(refused) == n, sorted(set(crowd.greetings))  # each one answered at once
    assert fds <= limit + 16, figures
    assert growth < budget + SLACK, figures
    assert during == 421, figures  # a sender retries a 4xx
    assert after == 250
    assert sorted(archived_ids(db)) == ["after@example.org", "warm@example.org"]
    with db() as s:  # the crowd's and the client's 421s, counted (written as the gateway stopped)
        assert counters.values(s, counters.REFUSED) == {"too-many-connections": len(refused) + 1}


def test_fewer_fds_than_connections_the_listener_survives_emfile(tmp_path: Path) -> None:
    nofile = 160
    n = 300
    gw, port, db = _start(
        tmp_path, ("prlimit", f"--nofile={nofile}:{nofile}"), LISTGATE_MAX_CONNECTIONS="1000"
    )
    crowd = None
    try:
        assert post_code(port, "warm@example.org") == 250
        crowd = Crowd(port, n, wait=2.0)  # those past the fds wait in the listen queue
        pid = gw.process.pid
        fds, logged = _fds(pid), len(gw.text())
        time.sleep(HOLD)  # out of fds a while longer
        flood = len(gw.text()) - logged
        alive = gw.process.poll() is None
    finally:
        after = _leave(gw, port, crowd)
    silent = sum(g == "<silent>" for g in crowd.greetings)
    record(
        f"{n} connections to a gateway with {nofile} fds (limit set to 1000)",
        n,
        0,
        0,
        None,
        f"{crowd.served()} served, {silent} waited unanswered; {fds} fds; {flood} bytes logged in "
        f"{HOLD} s; a post after: {after}",
        held=n if after == 250 else 0,
    )
    assert alive, f"the gateway died of EMFILE:\n{gw.text()[-2000:]}"
    assert flood < 4096, f"{flood} bytes of log in {HOLD} s out of fds: {gw.text()[-1500:]}"
    assert after == 250, f"after the crowd: {after}\n{gw.text()[-2000:]}"
    assert sorted(archived_ids(db)) == ["after@example.org", "warm@example.org"]


def test_a_low_fd_limit_lowers_the_default_limit_no_emfile(tmp_path: Path) -> None:
    nofile, n = 256, 300  # the default limit: 256 less RESERVED_FDS
    gw, port, db = _start(tmp_path, ("prlimit", f"--nofile={nofile}:{nofile}"))
    crowd = None
    try:
        assert post_code(port, "warm@example.org") == 250
        crowd = Crowd(port, n, wait=5.0)
        pid = gw.process.pid
        fds = _fds(pid)
    finally:
        after = _leave(gw, port, crowd)
    refused = crowd.refused()
    assert crowd.served() == nofile - RESERVED_FDS and refused and set(refused) == {FULL}, refused[
        :5
    ]
    assert fds < nofile
    assert "out of system resource" not in gw.text() and "Too many open files" not in gw.text()
    assert after == 250
    assert sorted(archived_ids(db)) == ["after@example.org", "warm@example.org"]


def _post_on(c: RawClient, msgid: str) -> str:
    """Post one message on an open connection; the reply to its DATA."""
    for line in ("EHLO crowd.example", "MAIL FROM:<carol@example.org>", "RCPT TO:<dev@lists.test>"):
        assert c.cmd(line).startswith("250"), line
    assert c.cmd("DATA").startswith("354")
    c.send(post(msgid) + b".\r\n")
    return c.reply()


def _let_in(port: int, source: str, refused: list[str], within: float = 20.0) -> RawClient:
    """A connection the gateway greets with 220 (once it noticed others close, within seconds);
    the refusals meanwhile are added to `refused`."""
    deadline = time.monotonic() + within
    while True:
        c = RawClient(port, source=source)
        if c.greeting.startswith("220") or time.monotonic() > deadline:
            return c
        refused.append(c.greeting)
        c.close()
        time.sleep(0.2)


def test_over_a_set_limit_the_first_keep_working_and_others_come_in_later(tmp_path: Path) -> None:
    limit = 8
    gw, port, db = _start(tmp_path, LISTGATE_MAX_CONNECTIONS=str(limit))
    first: list[RawClient] = []
    opened: list[RawClient] = []  # closed at the end
    stored: list[str] = []
    try:
        first = [RawClient(port, source=f"127.0.0.{10 + i}") for i in range(limit)]
        opened += first
        assert [c.greeting[:3] for c in first] == ["220"] * limit
        extra = [RawClient(port, source=f"127.0.0.{30 + i}") for i in range(4)]
        opened += extra
        assert [c.greeting for c in extra] == [FULL] * 4
        assert [c.reply() for c in extra] == ["<closed>"] * 4
        for i, c in enumerate(first):  # the first ones keep working, one post after another
            assert _post_on(c, f"first{i}@example.org").startswith("250"), i
            stored.append(f"first{i}@example.org")
        assert post_code(port, "full@example.org") == 421  # still full
        for c in first[:3]:  # three of the first leave
            c.cmd("QUIT")
            c.close()
        waited: list[str] = []
        later = [_let_in(port, f"127.0.0.{40 + i}", waited) for i in range(3)]
        opened += later
        assert [c.greeting[:3] for c in later] == ["220"] * 3
        for i, c in enumerate(later):
            assert _post_on(c, f"later{i}@example.org").startswith("250"), i
            stored.append(f"later{i}@example.org")
        opened.append(RawClient(port, source="127.0.0.50"))
        assert opened[-1].greeting == FULL  # full again
    finally:
        for c in opened:
            c.close()
        gw.stop()
    assert sorted(archived_ids(db)) == sorted(stored)  # each 250 is one stored row
    assert "refusing connections: 8 open, the limit (LISTGATE_MAX_CONNECTIONS) is 8" in gw.text()
    with db() as s:  # 4 extra, the client's post, the last one, any while the three were leaving
        assert counters.values(s, counters.REFUSED) == {"too-many-connections": 6 + len(waited)}
